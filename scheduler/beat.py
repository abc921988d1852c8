"""``agentq beat``: Celery beat, with celery-redbeat's scheduler, running the schedules file.

celery-redbeat keeps the schedule in Redis and holds a lock there, so beat can be started on two
hosts at once: only the one holding the lock schedules, and the other takes over if it dies.

Each report becomes one beat entry. A cron report's entry fires every minute and the report runs
in the minutes its cron expression matches *in its own time zone* (celery-redbeat stores cron
schedules without a zone, so this is how each report keeps its own, daylight saving included);
an ``interval_seconds`` report's entry fires at that interval. Firing does not send a Celery task:
the beat process itself submits the run's batch (``scheduler.runs``), so a report's token is read
only on the beat's host, from the environment variable or file the schedules file names.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab
from redbeat import RedBeatScheduler

from agentq.celery_app import make_celery
from agentq.connections import redbeat_options
from agentq.logs import get_logger
from agentq.settings import Settings
from producer.client import Client
from scheduler.config import ReportSchedule
from scheduler.runs import ScheduleRuns

log = get_logger(__name__)

RUN_REPORT_TASK = "agentq.run_scheduled_report"  # never sent: the beat runs it in place
FILES_EVERY_SECONDS = 5.0
REQUESTS_EVERY_SECONDS = 1.0  # how soon ``agentq reports run`` is answered


def make_beat_app(settings: Settings, reports: list[ReportSchedule]) -> Celery:
    app = make_celery(settings)
    schedule: dict[str, dict[str, Any]] = {}
    for report in reports:
        every: Any = (
            crontab(minute="*")
            if report.cron is not None
            else timedelta(seconds=report.interval_seconds or 60)
        )
        schedule[f"report:{report.name}"] = {
            "task": RUN_REPORT_TASK,
            "schedule": every,
            "args": [report.name],
        }
    app.conf.update(
        beat_schedule=schedule,
        beat_max_loop_interval=5,
        **redbeat_options(settings.redis_url, settings.redis_sentinel_master),
        redbeat_key_prefix="agentq:redbeat",
        redbeat_lock_timeout=30,
        timezone="UTC",
    )
    app.agentq_reports = {r.name: r for r in reports}  # type: ignore[attr-defined]
    app.agentq_settings = settings  # type: ignore[attr-defined]
    return app


class ReportScheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's scheduler, starting report runs in this process instead of sending tasks."""

    _last_files = 0.0

    @property
    def _runs(self) -> ScheduleRuns:
        runs = getattr(self, "_runs_cache", None)
        if runs is None:
            runs = ScheduleRuns(Client(self.app.agentq_settings))
            self._runs_cache = runs
        return runs

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if entry.task != RUN_REPORT_TASK:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        name = entry.args[0]
        report = self.app.agentq_reports.get(name)
        if report is None:
            return None
        try:
            self._runs.start(report)
        except Exception as exc:  # one report's failure must not stop the others
            log.error("scheduled report could not start", report=name, error=str(exc))
        return None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # A beat ticks only once it holds RedBeat's lock (taken, blocking, as it starts): what
        # follows runs in one beat at a time.
        remaining: float = super().tick(*args, **kwargs)
        reports = self.app.agentq_reports
        try:
            self._runs.take_requests(reports)
            self._runs.start_queued(reports)
        except Exception as exc:
            log.warning("could not start requested or queued runs", error=str(exc))
        if time.monotonic() - self._last_files >= FILES_EVERY_SECONDS:
            self._last_files = time.monotonic()
            try:
                self._runs.write_files(reports)
            except Exception as exc:
                log.warning("could not write report files", error=str(exc))
        return min(remaining, REQUESTS_EVERY_SECONDS)
