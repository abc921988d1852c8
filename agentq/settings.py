"""Every setting agentq reads, in one typed place.

All settings come from environment variables (``AGENTQ_*``, plus the OpenAI client's own
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``) so that the producer, the worker and the tests all see
one configuration. The README's settings table is checked against this class by a test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentq.jobs import ServiceTier

DAY = 24 * 3600


class Settings(BaseSettings):
    """agentq's configuration; each field is the env var ``AGENTQ_<NAME>`` unless aliased."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTQ_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Where jobs live and travel.
    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis for the job store and the Celery broker (or a `sentinel://` URL).",
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        description="The master's name when AGENTQ_REDIS_URL is a Sentinel URL "
        "(`sentinel://host:26379;sentinel://host2:26379/0`).",
    )
    queue: str = Field("agentq", description="Celery queue that jobs are sent to.")
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) that seal user tokens, comma-separated, newest first "
        "(`agentq keygen` prints one). Required to submit and to run a worker.",
    )
    job_ttl_seconds: int = Field(
        7 * DAY, ge=60, description="How long job records and traces are kept."
    )
    max_question_bytes: int = Field(
        16 * 1024, ge=1, description="Largest question accepted (UTF-8 bytes)."
    )
    max_metadata_bytes: int = Field(
        4 * 1024, ge=2, description="Largest metadata accepted per job (bytes of its JSON)."
    )
    sealed_token_ttl_seconds: int = Field(
        2 * DAY,
        ge=60,
        description="A sealed token older than this no longer opens: its job fails "
        "`auth_error` (a copied Redis dump is useless later). Keep it above the longest wait "
        "in the queue.",
    )

    # Admission and tenant limits (see agentq/dispatch.py).
    tenant_max_inflight: int = Field(
        50,
        ge=1,
        description="Most jobs of one tenant (token) dispatched and not yet ended; the rest wait "
        "their turn.",
    )
    tenant_max_queued_jobs: int = Field(
        20_000,
        ge=0,
        description="Most unfinished (queued or running) jobs one tenant (token) may have; a "
        "submit past it gets HTTP 429 / exit 5 (0: no limit).",
    )
    tenant_max_queued_batches: int = Field(
        10,
        ge=0,
        description="Most unfinished batches one tenant may have (0: no limit).",
    )
    tenant_submits_per_minute: int = Field(
        600,
        ge=0,
        description="Most submits (a batch counts once) one tenant may make per minute "
        "(0: no limit).",
    )
    batch_max_inflight: int = Field(
        20,
        ge=1,
        description="Default for how many jobs of one batch run at once (a batch may ask for "
        "another number, up to AGENTQ_TENANT_MAX_INFLIGHT).",
    )
    max_batch_questions: int = Field(10_000, ge=1, description="Most questions in one batch.")
    api_max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest request body the HTTP API reads, however it is sent (chunked or "
        "not); past it the API answers 413 and stops reading. 8 MiB holds a batch of 10,000 "
        "typical questions (~200 bytes each with a little metadata: ~4 MB of JSON) twice over.",
    )
    dispatch_headroom: int = Field(
        8,
        ge=0,
        description="Spare messages kept in the broker beyond the live workers' free slots "
        "(small keeps scheduling fair across tenants).",
    )
    mcp_max_requests_per_second: float = Field(
        0.0,
        ge=0,
        description="All workers together send at most this many requests per second to the MCP "
        "server (0: no limit). Keep it below the server's INFRAHUB_MCP_RATE_LIMIT_RPS.",
    )
    model_max_concurrency: int = Field(
        64,
        ge=0,
        description="All workers together keep at most this many model requests open (0: no "
        "limit).",
    )
    model_tokens_per_minute: int = Field(
        0,
        ge=0,
        description="All workers together spend at most this many model tokens per minute, as "
        "the provider counts them (input plus the most a request may write); set it to the "
        "key's TPM limit (0: no limit). A request waits for its estimated tokens, corrected from "
        "the response's usage; the provider's `x-ratelimit-*` headers lower the budget when "
        "another client shares the key, and a 429 is waited out and sent again, not failed.",
    )
    model_requests_per_minute: int = Field(
        0,
        ge=0,
        description="All workers together send at most this many model requests per minute; "
        "set it to the key's RPM limit (0: no limit).",
    )

    # The MCP server.
    mcp_url: str = Field("http://localhost:8001/mcp", description="Infrahub MCP endpoint.")
    mcp_connect_timeout_seconds: float = Field(
        30.0, gt=0, description="HTTP timeout for each request to the MCP server."
    )
    mcp_sse_read_timeout_seconds: float = Field(
        300.0, gt=0, description="How long an MCP reply stream may stay silent."
    )
    tool_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest one MCP request (e.g. a tool call) may take; the SDK's 5 s default "
        "is too short for Infrahub queries.",
    )
    prompt_name: str = Field(
        "infrahub_agent", description="MCP prompt used as the agent's instructions."
    )
    prompt_cache_seconds: float = Field(
        300.0, ge=0, description="How long a worker process reuses a fetched prompt."
    )
    token_proof_seconds: float = Field(
        300.0,
        ge=0,
        description="How long a worker (or producer) process trusts a token it has proven with "
        "one authenticated read through the MCP server (0: prove it for every job). No model "
        "request is made for a token that was not proven.",
    )
    verify_token_at_submit: bool = Field(
        False,
        description="Prove the token at submit too (one read through the MCP server from the "
        "producer or API): a token Infrahub rejects gets exit 2 / HTTP 401 and nothing is "
        "enqueued.",
    )
    tools_cache_seconds: float = Field(
        300.0, ge=0, description="How long a worker process reuses the server's tool list."
    )
    allow_write_tools: bool = Field(
        False,
        description="Whether a job may ask for the server's write tools (`allow_writes`); "
        "without it every job gets only the read tools.",
    )
    read_tools: str | None = Field(
        None,
        description="Comma-separated tool names that jobs may use by default, instead of the "
        "tools the server marks `readOnlyHint`.",
    )

    # The model.
    model: str | None = Field(
        None, description="Model name sent to the model API (default: the Agents SDK's default)."
    )
    model_api: Literal["responses", "chat_completions"] = Field(
        "responses", description="OpenAI API flavour: `responses` or `chat_completions`."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "AGENTQ_OPENAI_API_KEY"),
        description="API key for the model endpoint.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "AGENTQ_OPENAI_BASE_URL"),
        description="Any OpenAI-compatible endpoint (default: OpenAI).",
    )
    model_timeout_seconds: float = Field(120.0, gt=0, description="Timeout of one model request.")
    model_max_retries: int = Field(
        2, ge=0, description="Retries of one model request by the OpenAI client (429/5xx)."
    )
    max_turns: int = Field(10, ge=1, description="Most model turns one agent run may take.")
    model_fallbacks: str = Field(
        "",
        description="Models to try in order, comma-separated, when a model keeps failing "
        "transiently (5xx, timeouts, unreachable) after its retries; same endpoint.",
    )

    # Cost (see the README's Cost section and agentq/prices.py).
    prices_file: str | None = Field(
        None,
        description="A price table (JSON, the shape of agentq/data/prices.json) instead of the "
        "one shipped; a model it does not list shows `cost unknown`.",
    )
    service_tier: ServiceTier | None = Field(
        None,
        description="Service tier asked of the model for jobs that name none (unset: none is "
        "sent, for endpoints that do not know the parameter).",
    )
    report_service_tier: ServiceTier | None = Field(
        None,
        description="Service tier of scheduled reports that name none (`flex`: about half the "
        "price, for work nobody waits for).",
    )
    flex_tries: int = Field(
        3,
        ge=1,
        description="Tries of a flex request the provider refuses for lack of capacity (429 "
        "`resource unavailable`) before it is sent at the default tier.",
    )
    flex_backoff_seconds: float = Field(
        2.0, ge=0, description="Wait before the 2nd flex try; doubles each time."
    )
    prompt_cache_key: str = Field(
        "auto",
        description="The deployment's part of the `prompt_cache_key` sent with every model "
        "request (the prompt and tool-list version is added), so providers route jobs that "
        "share a prefix to one cache; `auto`: `agentq`, sent to OpenAI's own endpoint only (an "
        "endpoint that does not know the parameter may refuse it); empty: never sent.",
    )
    tenant_daily_max_cost_usd: float = Field(
        0.0,
        ge=0,
        description="Most dollars of model calls one tenant may spend per UTC day; beyond it "
        "its jobs end `budget_exceeded` (0: no cap).",
    )

    # Failure handling.
    retry_max_attempts: int = Field(
        5, ge=1, description="Most attempts of a job whose failures are transient."
    )
    retry_base_seconds: float = Field(
        1.0, ge=0, description="Backoff before the 2nd attempt; doubles each time (full jitter)."
    )
    retry_cap_seconds: float = Field(
        60.0, ge=0, description="Longest backoff between attempts (Retry-After may ask more)."
    )
    mcp_request_retries: int = Field(
        3,
        ge=0,
        description="Retries of one MCP HTTP request on connection errors and 429/502/503/504, "
        "inside an attempt.",
    )
    job_deadline_seconds: float = Field(
        600.0, gt=0, description="Longest one attempt may run before it ends with `timeout`."
    )
    max_deadline_seconds: float = Field(
        3600.0,
        gt=0,
        description="Longest deadline a submit may ask for (`--deadline`); at least "
        "`AGENTQ_JOB_DEADLINE_SECONDS`.",
    )
    durable_writes: Literal["auto", "on", "off"] = Field(
        "auto",
        description="What a user is told has happened (a submit, a cancel, a job's end) is on "
        "disk first: `auto` waits with WAITAOF where Redis has it (7.2+, with appendonly) and "
        "otherwise relies on `appendfsync always`, warning once if Redis has neither; `on` "
        "refuses to write without one of them; `off` never waits.",
    )
    durable_write_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Longest a write waits for Redis to confirm it is on disk (WAITAOF) before "
        "it is reported as failed.",
    )
    heartbeat_ttl_seconds: int = Field(
        30, ge=2, description="A worker whose heartbeat is this old is dead: its jobs are rerun."
    )
    poison_after: int = Field(
        3, ge=1, description="Jobs whose runs were lost (worker died) this often fail `poisoned`."
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, in-flight jobs get this long; the rest are requeued."
    )

    # Webhooks and scheduled reports.
    webhook_secret: SecretStr | None = Field(
        None,
        description="Master secret of completion webhooks (`whsec_...`); each tenant's deliveries "
        "are signed with a secret derived from it (`agentq webhook-secret`). Required to submit "
        "with a webhook URL.",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Allow webhook URLs on loopback or private addresses (for local setups); "
        "checked at submit and again at each delivery.",
    )
    webhook_allow_http: bool = Field(
        False, description="Allow plain http:// webhook URLs (default: https only)."
    )
    webhook_attempts: int = Field(5, ge=1, description="Delivery attempts per webhook.")
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest one delivery attempt may take, all of it (connect, send, reply).",
    )
    webhook_concurrency: int = Field(
        8,
        ge=1,
        description="Webhook deliveries one worker process runs at once (beside its job slots).",
    )
    schedules_file: str | None = Field(
        None, description="YAML or TOML file of scheduled reports, read by `agentq beat`."
    )

    # The worker.
    worker_concurrency: int = Field(
        50, ge=1, description="Jobs one worker process runs at once (on one event loop)."
    )
    worker_processes: int = Field(
        1,
        ge=1,
        le=256,
        description="Worker processes `agentq worker` starts, each with its own event loop and "
        "AGENTQ_WORKER_CONCURRENCY slots; about one per core, since each process uses one.",
    )
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of a worker's Prometheus /metrics endpoint (0: none). With several "
        "processes, the Nth listens on this port + N - 1.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address a worker's /metrics endpoint listens on: loopback unless a "
        "Prometheus on another host scrapes it (the compose file sets 0.0.0.0).",
    )
    task_events: bool = Field(
        False,
        description="Send Celery task events (for Flower); they hold the job id, never a token.",
    )
    trace_excerpt_chars: int = Field(
        500, ge=0, description="Longest excerpt of a tool result kept in a trace."
    )

    # Logging.
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json`, `console`, or `auto` (console on a TTY, else JSON)."
    )

    @model_validator(mode="after")
    def _deadline_within_max(self) -> Settings:
        if self.job_deadline_seconds > self.max_deadline_seconds:
            raise ValueError(
                "AGENTQ_JOB_DEADLINE_SECONDS must not be larger than AGENTQ_MAX_DEADLINE_SECONDS"
            )
        return self

    @property
    def fallback_models(self) -> list[str]:
        return [name.strip() for name in self.model_fallbacks.split(",") if name.strip()]

    @property
    def model_name(self) -> str:
        """The model jobs run with: AGENTQ_MODEL, else the Agents SDK's default."""
        if self.model:
            return self.model
        # Imported here: the SDK takes about a second to import, and few commands need it.
        from agents.models import get_default_model

        return get_default_model()

    @property
    def prompt_cache_prefix(self) -> str | None:
        """What ``prompt_cache_key``s start with, or None when none is sent."""
        if self.prompt_cache_key != "auto":
            return self.prompt_cache_key or None
        host = urlsplit(self.openai_base_url or "https://api.openai.com/v1").hostname or ""
        return "agentq" if host == "api.openai.com" else None

    @property
    def models(self) -> list[str]:
        """Every model a job may run with, in the order they are tried."""
        return list(dict.fromkeys([self.model_name, *self.fallback_models]))

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()


def env_name(field_name: str) -> str:
    """The environment variable a field is read from."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"AGENTQ_{field_name.upper()}"


def settings_table() -> str:
    """The README's settings table, made from the fields above (``python -m agentq.settings``)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if default is None:
            shown = "(unset)"
        elif hasattr(default, "get_secret_value"):
            shown = "(secret)"
        else:
            shown = f"`{default}`"
        rows.append(f"| `{env_name(name)}` | {shown} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
