# agentq: the worker (default command), beat, the HTTP API and the CLI. Python 3.13, like the Infrahub MCP server.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY agentq ./agentq
COPY worker ./worker
COPY producer ./producer
COPY scheduler ./scheduler
COPY api ./api
COPY cli ./cli
COPY doubles ./doubles
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 agentq
USER agentq
ENTRYPOINT ["agentq"]
CMD ["worker"]
