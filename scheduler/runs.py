"""Starting runs of scheduled reports: each run is a batch, remembered under its report's name.

A run is started at most once per tick: besides celery-redbeat's lock (only one beat process
schedules at a time), each run takes a ``SET NX`` key named after its report and its minute (or
interval slot), so a beat that took over from a stalled one cannot fire the same tick again.
Runs beyond ``retention_runs`` are forgotten: their batch record, job list and report are deleted.
When a report names an ``output_dir``, the beat writes the rendered report files there once the
run's report exists (a worker writes it when the batch's last job ends). Reading the runs
(the API, ``agentq reports``) is the core's ``agentq.schedule_runs``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agentq.batches import batch_jobs_key, batch_key, report_key
from agentq.connections import redis_errors
from agentq.logs import get_logger
from agentq.reports import BatchReport, render
from agentq.schedule_runs import FILES_KEY, SCHEDULES_KEY, fired_key, runs_key
from producer.client import Client
from scheduler.config import ReportSchedule

log = get_logger(__name__)

FIRED_KEEP_SECONDS = 300  # least time a tick's "fired" key is kept


class ScheduleRuns:
    """Starts runs, keeps their list within retention, and writes their report files."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._redis = client.redis
        self._url = client.settings.redis_url

    def register(self, reports: list[ReportSchedule]) -> None:
        """Describe each report in Redis (``agentq reports list`` reads it), with its owner."""
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

    def start(self, report: ReportSchedule, now: datetime | None = None) -> str | None:
        """Start this tick's run of ``report`` (its batch id), unless it already started or the
        report is not due this minute."""
        now = now or datetime.now(UTC)
        if report.cron is not None:
            if not report.due_minute(now):
                return None
            tick = now.strftime("%Y%m%dT%H%M")
            tick_seconds: float = 60
        else:
            assert report.interval_seconds is not None
            tick = str(int(now.timestamp() // report.interval_seconds))
            tick_seconds = report.interval_seconds
        fired = fired_key(report.name, tick)
        # The key only has to outlive its tick (another beat may still be in it): a few ticks'
        # worth, so a report leaves a handful of these at any time, not one per tick for days.
        keep = max(FIRED_KEEP_SECONDS, 2 * tick_seconds)
        with redis_errors(self._url):
            if not self._redis.set(fired, "1", nx=True, ex=int(keep)):
                return None
        token = report.read_token()
        items = report.items(self._client.settings.max_batch_questions)
        local = now.astimezone(report.timezone_info)
        batch_id = self._client.submit_batch(
            items,
            token,
            name=f"{report.name} {local:%Y-%m-%d %H:%M %Z}",
            max_inflight=report.max_inflight,
            schedule=report.name,
        )
        started = now.timestamp()
        with redis_errors(self._url):
            self._redis.zadd(runs_key(report.name), {batch_id: started})
            if report.output_dir is not None:
                self._redis.zadd(FILES_KEY, {f"{report.name}/{batch_id}": started})
        self._forget_old_runs(report)
        log.info("scheduled report started", report=report.name, batch_id=batch_id)
        return batch_id

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
