"""The schedules file: which reports run when, with whose token, kept how long.

    # schedules.yaml (or .toml with [[reports]] tables)
    reports:
      - name: nightly-devices            # [a-z0-9][a-z0-9_-]*
        cron: "0 2 * * *"                # minute hour day-of-month month day-of-week
        timezone: Europe/Paris           # IANA name; default UTC
        questions_file: nightly.txt      # or questions: [...] (strings or {question, metadata})
        token_env: INFRAHUB_NIGHTLY_TOKEN  # or token_file: /run/secrets/infrahub
        retention_runs: 30
        output_dir: /var/lib/agentq/reports  # optional: rendered files per run
        formats: [md, csv]
        max_inflight: 10
        answer_format: items             # or text (the default); items are diffed exactly
        item_key: name                   # the field that identifies an item (default name)
        overlap: skip                    # or queue: start when the previous run ends
        max_cost_usd: 5.00               # optional: a run's budget; the rest end budget_exceeded
        service_tier: flex               # optional: auto|default|flex|priority
                                         # (default AGENTQ_REPORT_SERVICE_TIER)
        notify:                          # optional: a signed webhook when a run ends
          webhook: https://hooks.example.com/agentq
          when: changed                  # changed (the default), always or failed

The file never holds a token, only where to read one. Everything is checked when ``agentq beat``
starts, questions and tokens included, and a problem is one line naming the file, the report and
the field. ``interval_seconds`` may replace ``cron`` (useful for short intervals and tests).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from celery.schedules import crontab
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentq.answers import AnswerFormat, check_answer_format
from agentq.batches import BatchItem, NotifyWhen
from agentq.errors import BadRequest, ConfigError
from agentq.jobs import ServiceTier
from agentq.logs import is_secret_key
from agentq.reports import ReportFormat
from agentq.webhooks.targets import parse_webhook_url
from producer.batch_files import load_batch_file
from producer.checks import check_question_ids

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # a key an error message may repeat


class QuestionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    metadata: dict[str, Any] | None = None
    id: str | None = Field(None, min_length=1, max_length=200)  # keeps its history if reworded


class Notify(BaseModel):
    """Where and when a run's end is told: ``changed`` sends only when the run's changes since
    the previous run are not empty, ``failed`` when any question failed."""

    model_config = ConfigDict(extra="forbid")
    webhook: str
    when: NotifyWhen = "changed"

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str) -> str:
        try:  # the deployment's own policy (https only, public addresses) is checked at start
            parse_webhook_url(value, allow_http=True)
        except BadRequest as exc:
            raise ValueError(str(exc)) from None
        return value


def _default_formats() -> list[ReportFormat]:
    return ["md"]


class ReportSchedule(BaseModel):
    """One scheduled report, as written in the file (paths resolved against it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    cron: str | None = None
    interval_seconds: float | None = Field(None, ge=1)
    timezone: str = "UTC"
    questions: list[str | QuestionEntry] | None = None
    questions_file: Path | None = None
    token_env: str | None = None
    token_file: Path | None = None
    retention_runs: int = Field(30, ge=1, le=10_000)
    output_dir: Path | None = None
    formats: list[ReportFormat] = Field(default_factory=_default_formats)
    max_inflight: int | None = Field(None, ge=1)
    answer_format: AnswerFormat = "text"
    item_key: str | None = None
    overlap: Literal["skip", "queue"] = "skip"
    notify: Notify | None = None
    max_cost_usd: float | None = Field(None, gt=0)
    service_tier: ServiceTier | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (at most 64)")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron_schedule(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            # Most likely the token itself, pasted in by mistake: never repeat it.
            raise ValueError("must name an environment variable, not hold a token")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        """Refuse ``token:``, ``api_token:``, ``password:`` ... (named, never repeated)."""
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and is_secret_key(key):
                    shown = key if _PLAIN_KEY.match(key) else "(a key)"
                    raise ValueError(
                        f"{shown}: a token never goes in the schedules file; "
                        "use token_env or token_file"
                    )
        return data

    @model_validator(mode="after")
    def _one_of_each(self) -> ReportSchedule:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("cron: give exactly one of cron and interval_seconds")
        if (self.questions is None) == (self.questions_file is None):
            raise ValueError("questions: give exactly one of questions and questions_file")
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("token_env: give exactly one of token_env and token_file")
        try:
            self.answer_format, self.item_key = check_answer_format(
                self.answer_format, self.item_key
            )
        except BadRequest as exc:
            raise ValueError(f"{'item_key' if self.item_key else 'answer_format'}: {exc}") from None
        return self

    def items(self, max_questions: int) -> list[BatchItem]:
        """The report's questions (read from ``questions_file`` each time)."""
        if self.questions_file is not None:
            return load_batch_file(self.questions_file, max_questions=max_questions)
        entries = self.questions or []
        return [
            BatchItem(e) if isinstance(e, str) else BatchItem(e.question, e.metadata, e.id)
            for e in entries
        ]

    def read_token(self) -> str:
        """The token, from its environment variable or file; ConfigError if there is none.

        The messages never repeat ``token_env`` or ``token_file``: either may hold a token pasted
        in by mistake (a token can look like a variable name or a file name), and these messages
        reach the terminal and the beat's log. The file and the report named are enough to find
        it.
        """
        if self.token_env is not None:
            token = os.environ.get(self.token_env, "").strip()
            if not token:
                raise ConfigError("token_env: the environment variable it names is not set")
            return token
        assert self.token_file is not None
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(f"token_file: cannot read the file it names: {reason}") from None
        if not token:
            raise ConfigError("token_file: the file it names is empty")
        return token

    @property
    def timezone_info(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def due_minute(self, now: datetime) -> bool:
        """Whether a cron report runs in the minute ``now`` falls in (in its time zone)."""
        assert self.cron is not None
        local = now.astimezone(ZoneInfo(self.timezone))
        spec = cron_schedule(self.cron)
        return (
            local.minute in spec.minute
            and local.hour in spec.hour
            and local.day in spec.day_of_month
            and local.month in spec.month_of_year
            and local.isoweekday() % 7 in spec.day_of_week
        )


def cron_schedule(expression: str) -> crontab:
    """A celery crontab from a 5-field expression; ValueError with a plain reason."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day,
            month_of_year=month,
            day_of_week=weekday,
        )
    except (ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None


def load_schedules(
    path: Path, *, check_tokens: bool = True, max_questions: int = 10_000
) -> list[ReportSchedule]:
    """Every report in the file, checked; ConfigError naming file, report and field."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the schedules file {path}: {exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{name}: the schedules file must be .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{name}: cannot be parsed: {first}") from None
    if (
        not isinstance(data, dict)
        or set(data) - {"reports"}
        or not isinstance(data.get("reports"), list)
    ):
        raise ConfigError(f"{name}: expected a top-level 'reports' list and nothing else")
    reports: list[ReportSchedule] = []
    for position, raw in enumerate(data["reports"], start=1):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f'{name}: report "{label}"' if label else f"{name}: report #{position}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping")
        raw = {**raw}
        for key in ("questions_file", "token_file", "output_dir"):
            if isinstance(raw.get(key), str):
                raw[key] = (path.parent / raw[key]).resolve()
        try:
            report = ReportSchedule.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        if report.name in {r.name for r in reports}:
            raise ConfigError(f"{where}: name: another report has the same name")
        try:
            items = report.items(max_questions)
            if not items:
                raise BadRequest("the report has no questions")
            check_question_ids(item.id for item in items)
            if check_tokens:
                report.read_token()
        except (BadRequest, ConfigError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        reports.append(report)
    if not reports:
        raise ConfigError(f"{name}: no reports")
    return reports


def _first_error(exc: ValidationError) -> str:
    """The first problem, as ``field: reason``, built from pydantic's parts and never from its
    text (which quotes the input, ``input_value=...``: a pasted token, for one)."""
    error = exc.errors(include_input=False, include_url=False, include_context=False)[0]
    location = ".".join(_location_part(part) for part in error.get("loc", ()))
    message = str(error["msg"]).removeprefix("Value error, ")
    if location and not message.startswith(f"{location}:"):
        return f"{location}: {message}"
    return message


_FIELDS = (
    frozenset(ReportSchedule.model_fields)
    | frozenset(QuestionEntry.model_fields)
    | frozenset(Notify.model_fields)
)


def _location_part(part: str | int) -> str:
    """A field or index as the message may show it; a key that is neither a field nor a short
    plain word (a token written as a key, say) is not repeated."""
    if isinstance(part, int) or part in _FIELDS or _PLAIN_KEY.match(part):
        return str(part)
    return "(an unknown key)"
