"""After every other test has run: no plaintext token anywhere.

Scans every key and value in the test Redis (job records, traces, Celery's queues and unacked
messages), every log file the services wrote (workers and doubles) and everything the CLI printed;
among them, the jobs whose MCP server echoed their token back in tool results and errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.conftest import ALL_TOKENS, CLI_OUTPUTS, ECHOED_JOB_IDS


def redis_dump(client: redis.Redis, match: str = "*") -> str:
    parts: list[str] = []
    for key in client.scan_iter(match=match, count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "hash":
            parts.extend(f"{k}={v}" for k, v in client.hgetall(key).items())
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(client.smembers(key))
        elif kind == "zset":
            parts.extend(client.zrange(key, 0, -1))
    return "\n".join(parts)


@pytest.mark.last
def test_no_plaintext_token_in_redis_logs_or_output(
    redis_client: redis.Redis, redis_url: str, service_dir: Path
) -> None:
    databases = [int(name[2:]) for name in redis_client.info("keyspace")]  # "db0", "db3", ...
    base = redis_url.rsplit("/", 1)[0]
    dump = "\n".join(
        redis_dump(redis.Redis.from_url(f"{base}/{db}", decode_responses=True)) for db in databases
    )
    assert "agentq:job:" in dump  # the scan saw the jobs the other tests made
    # ... including those whose MCP server echoed the token back (tests/test_echoed_token.py)
    assert all(f"agentq:job:{job_id}" in dump for job_id in ECHOED_JOB_IDS)
    logs = {path: path.read_text(errors="replace") for path in service_dir.rglob("*.log")}
    assert any("worker" in path.name for path in logs)  # ... and the workers' logs
    printed = "\n".join(r.stdout + r.stderr for r in CLI_OUTPUTS)
    for token in ALL_TOKENS:
        assert token not in dump, f"token found in Redis: {token[:10]}..."
        for path, text in logs.items():
            assert token not in text, f"token found in {path.name}"
        assert token not in printed, "token found in CLI output"
