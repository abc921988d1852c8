"""Starting runs of scheduled reports: each run is a batch, remembered under its report's name.

A run is started at most once per tick: besides celery-redbeat's lock (only one beat process
schedules at a time), each run takes a ``SET NX`` key named after its report and its minute (or
interval slot), so a beat that took over from a stalled one cannot fire the same tick again. A
run asked for by hand (``agentq reports run``) is a request in Redis that the beat holding the
lock takes, and it goes through the same key: it never doubles a tick.
While a report's previous run still runs, a tick starts nothing (``overlap: skip``, the default,
logged) or leaves one run waiting to start when the previous ends (``overlap: queue``).
Runs beyond ``retention_runs`` are forgotten: their batch record, job list and report are deleted.
When a report names an ``output_dir``, the beat writes the rendered report files there once the
run's report exists (a worker writes it when the batch's last job ends). Reading the runs
(the API, ``agentq reports``) is the core's ``agentq.schedule_runs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentq.batches import BatchStatus, batch_jobs_key, batch_key, report_key
from agentq.connections import redis_errors
from agentq.errors import BadRequest, ConfigError
from agentq.logs import get_logger
from agentq.reports import BatchReport, render
from agentq.schedule_runs import (
    FILES_KEY,
    REQUESTS_KEY,
    SCHEDULES_KEY,
    fired_key,
    pending_key,
    queued_key,
    request_key,
    runs_key,
)
from producer.checks import check_max_cost
from producer.client import Client
from scheduler.config import ReportSchedule

log = get_logger(__name__)

FIRED_KEEP_SECONDS = 300  # least time a tick's "fired" key is kept


@dataclass(frozen=True)
class Started:
    """What a tick (or a request) did: the run it started, or why it started none."""

    run: str | None
    reason: str | None


class ScheduleRuns:
    """Starts runs, keeps their list within retention, and writes their report files."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._redis = client.redis
        self._url = client.settings.redis_url

    def register(self, reports: list[ReportSchedule]) -> None:
        """Describe each report in Redis (``agentq reports list`` reads it), with its owner."""
        for report in reports:
            if report.notify is not None:
                try:  # the deployment's webhook policy (https, public addresses), at start
                    self._client.check_webhook(report.notify.webhook)
                except BadRequest as exc:
                    raise ConfigError(f'report "{report.name}": notify.webhook: {exc}') from None
            try:  # a budget needs the deployment's models priced: known at start, not at 2 am
                check_max_cost(report.max_cost_usd, self._client.settings)
            except BadRequest as exc:
                raise ConfigError(f'report "{report.name}": max_cost_usd: {exc}') from None
        with redis_errors(self._url):
            for report in reports:
                owner = self._client.sealer.fingerprint(report.read_token())
                description = {
                    "name": report.name,
                    "owner": owner,
                    "cron": report.cron,
                    "interval_seconds": report.interval_seconds,
                    "timezone": report.timezone,
                    "retention_runs": report.retention_runs,
                }
                self._redis.hset(SCHEDULES_KEY, report.name, json.dumps(description))

    def start(
        self, report: ReportSchedule, now: datetime | None = None, *, by_hand: bool = False
    ) -> Started:
        """Start this tick's run of ``report``, unless the tick already has one, the report is
        not due this minute, or (``overlap: skip``) its previous run still runs. A run started
        by hand (``agentq reports run``) in a minute its cron is due, or in an interval report's
        slot, takes that tick, so the schedule does not start a second run in it; in any other
        minute it takes none."""
        now = now or datetime.now(UTC)
        tick: str | None
        if report.cron is not None:
            due = report.due_minute(now)
            if not due and not by_hand:
                return Started(None, "not due")
            tick = now.strftime("%Y%m%dT%H%M") if due else None  # by hand, off the schedule
            tick_seconds: float = 60
        else:
            assert report.interval_seconds is not None
            tick = str(int(now.timestamp() // report.interval_seconds))
            tick_seconds = report.interval_seconds
        if tick is not None:
            fired = fired_key(report.name, tick)
            # The key only has to outlive its tick (another beat may still be in it): a few
            # ticks' worth, so a report leaves a handful at any time, not one per tick for days.
            keep = max(FIRED_KEEP_SECONDS, 2 * tick_seconds)
            with redis_errors(self._url):
                if not self._redis.set(fired, "1", nx=True, ex=int(keep)):
                    return Started(None, "a run of this tick has already started")
        running = self._running_run(report)
        if running is not None:
            if report.overlap == "queue":
                with redis_errors(self._url):
                    self._redis.set(queued_key(report.name), str(now.timestamp()))
                log.info(
                    "scheduled report queued: its previous run is still running",
                    report=report.name,
                    running=running,
                )
                return Started(None, f"queued: the previous run {running} is still running")
            log.info(
                "scheduled report skipped: its previous run is still running",
                report=report.name,
                running=running,
            )
            return Started(None, f"skipped: the previous run {running} is still running")
        return Started(self._submit(report, now), None)

    def start_queued(self, reports: dict[str, ReportSchedule]) -> int:
        """Start each queued run (``overlap: queue``) whose previous run has ended."""
        started = 0
        for report in reports.values():
            # Runs every second: one EXISTS per queue report, the run's state only when one waits.
            if report.overlap != "queue":
                continue
            with redis_errors(self._url):
                if not self._redis.exists(queued_key(report.name)):
                    continue
            if self._running_run(report) is not None:
                continue
            with redis_errors(self._url):
                if self._redis.getdel(queued_key(report.name)) is None:
                    continue  # started meanwhile
            self._submit(report, datetime.now(UTC))
            started += 1
        return started

    def _running_run(self, report: ReportSchedule) -> str | None:
        """The report's newest run if it has not ended (None: no run, or it ended)."""
        with redis_errors(self._url):
            newest = self._redis.zrange(runs_key(report.name), -1, -1)
        if not newest:
            return None
        batch = self._client.batches.load(str(newest[0]))
        if batch is None or batch.status != BatchStatus.RUNNING:
            return None
        return batch.id

    def _submit(self, report: ReportSchedule, now: datetime) -> str:
        token = report.read_token()
        items = report.items(self._client.settings.max_batch_questions)
        local = now.astimezone(report.timezone_info)
        notify = report.notify
        batch_id = self._client.submit_batch(
            items,
            token,
            name=f"{report.name} {local:%Y-%m-%d %H:%M %Z}",
            max_inflight=report.max_inflight,
            schedule=report.name,
            answer_format=report.answer_format,
            item_key=report.item_key,
            webhook_url=notify.webhook if notify is not None else None,
            notify_when=notify.when if notify is not None else "always",
            max_cost_usd=report.max_cost_usd,
            service_tier=report.service_tier or self._client.settings.report_service_tier,
        )
        started = now.timestamp()
        with redis_errors(self._url):
            self._redis.zadd(runs_key(report.name), {batch_id: started})
            if report.output_dir is not None:
                self._redis.zadd(FILES_KEY, {f"{report.name}/{batch_id}": started})
        self._forget_old_runs(report)
        log.info("scheduled report started", report=report.name, batch_id=batch_id)
        return batch_id

    def take_requests(self, reports: dict[str, ReportSchedule], limit: int = 10) -> int:
        """Start the runs asked for by hand (``agentq reports run``), answering each request."""
        taken = 0
        for _ in range(limit):
            with redis_errors(self._url):
                raw = self._redis.lpop(REQUESTS_KEY)
            if raw is None:
                break
            taken += 1
            request = json.loads(str(raw))
            report = reports.get(str(request.get("report")))
            answer: dict[str, str]
            if report is None:
                answer = {"status": "refused", "reason": "this beat's schedules file lacks it"}
            else:
                try:
                    started = self.start(report, by_hand=True)
                except Exception as exc:  # the token is missing, Redis or a quota said no
                    answer = {"status": "refused", "reason": str(exc)}
                else:
                    answer = (
                        {"status": "started", "run": started.run}
                        if started.run is not None
                        else {"status": "refused", "reason": started.reason or "not started"}
                    )
            log.info("report run asked for by hand", report=request.get("report"), **answer)
            with redis_errors(self._url):
                self._redis.delete(pending_key(str(request.get("report"))))
                self._redis.hset(
                    request_key(str(request.get("id"))),
                    mapping=answer,  # type: ignore[arg-type]
                )
        return taken

    def _forget_old_runs(self, report: ReportSchedule) -> None:
        with redis_errors(self._url):
            old = self._redis.zrange(runs_key(report.name), 0, -report.retention_runs - 1)
            for batch_id in [str(b) for b in old]:
                self._redis.delete(
                    batch_key(batch_id), batch_jobs_key(batch_id), report_key(batch_id)
                )
                self._redis.zrem(runs_key(report.name), batch_id)

    def write_files(self, reports: dict[str, ReportSchedule]) -> int:
        """Write the report files of ended runs; returns how many runs got their files."""
        written = 0
        with redis_errors(self._url):
            pending = [str(entry) for entry in self._redis.zrange(FILES_KEY, 0, 99)]
        for entry in pending:
            name, _, batch_id = entry.partition("/")
            report = reports.get(name)
            saved = self._client.batches.load_report(batch_id)
            if report is None or report.output_dir is None:
                self._redis.zrem(FILES_KEY, entry)
                continue
            if saved is None:
                if self._client.batches.load(batch_id) is None:  # forgotten meanwhile
                    self._redis.zrem(FILES_KEY, entry)
                continue
            write_report_files(report, BatchReport.model_validate_json(saved))
            self._redis.zrem(FILES_KEY, entry)
            written += 1
        return written


def write_report_files(report: ReportSchedule, content: BatchReport) -> list[Path]:
    """Render one run's report into ``output_dir/<name>/``; keep the newest retention_runs."""
    assert report.output_dir is not None
    folder = report.output_dir / report.name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(content.created_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    paths = []
    for fmt in report.formats:
        path = folder / f"{stamp}-{content.batch_id}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(render(content, fmt), encoding="utf-8")
        tmp.replace(path)  # readers never see half a file
        paths.append(path)
    for fmt in report.formats:
        files = sorted(folder.glob(f"*.{fmt}"))
        for stale in files[: -report.retention_runs]:
            stale.unlink(missing_ok=True)
    return paths
