"""Runs of scheduled reports as everyone reads them: which reports exist, their runs, whose.

Beat (``scheduler.runs``) writes these keys; the API and the CLI only read them. The reading
lives here in the core, so serving ``/v1/reports`` or ``agentq reports`` needs neither beat nor
the schedules file: a report is described in Redis by the beat that registered it, and each run
is a batch remembered under its report's name, newest last.

Comparing runs lives here too: a worker writing a run's report adds what changed since the
previous finished run (:meth:`ScheduledRuns.changes_for`), and ``reports diff`` compares any two
finished runs one token owns (:meth:`ScheduledRuns.diff`).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from agentq.audit import audit
from agentq.batches import BatchStore
from agentq.connections import redis_errors
from agentq.errors import BadRequest, JobNotFound
from agentq.report_changes import RunChanges, compare_runs
from agentq.reports import BatchReport
from agentq.sealing import TokenSealer
from agentq.store import KEY_PREFIX

SCHEDULES_KEY = f"{KEY_PREFIX}:schedules"  # hash: report name -> its description (JSON)
FILES_KEY = f"{KEY_PREFIX}:schedule-files"  # zset: "name/batch id" -> when the run started


def runs_key(name: str) -> str:
    """The zset of a report's kept runs: batch id -> when the run started."""
    return f"{KEY_PREFIX}:schedule:{name}:runs"


def fired_key(name: str, tick: str) -> str:
    """Taken (``SET NX``) by the one beat that starts ``name``'s run of ``tick``."""
    return f"{KEY_PREFIX}:schedule:{name}:fired:{tick}"


def queued_key(name: str) -> str:
    """Set while a run of ``name`` waits for the previous one to end (``overlap: queue``)."""
    return f"{KEY_PREFIX}:schedule:{name}:queued"


REQUESTS_KEY = f"{KEY_PREFIX}:schedule-requests"  # list: runs asked for by hand, for the beat
REQUEST_KEEP_SECONDS = 3600


def request_key(request_id: str) -> str:
    """A run asked for by hand: its report, then what the beat did (status, run or reason)."""
    return f"{KEY_PREFIX}:schedule-request:{request_id}"


def pending_key(name: str) -> str:
    """The request for ``name`` no beat has answered yet: at most one waits per report."""
    return f"{KEY_PREFIX}:schedule:{name}:requested"


PENDING_SECONDS = 60  # a request no beat took stops holding its report's place after this
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # what request_run makes: nothing else reaches a key


@dataclass
class Run:
    report: str
    batch_id: str
    started_at: float


class ScheduledRuns:
    """The scheduled reports and their runs, as one token may see them."""

    def __init__(
        self, client: redis.Redis, batches: BatchStore, sealer: TokenSealer, url: str
    ) -> None:
        self._redis = client
        self._batches = batches
        self._sealer = sealer
        self._url = url

    def described(self) -> dict[str, dict[str, object]]:
        """Every registered report's description (name, owner, cron or interval, retention)."""
        with redis_errors(self._url):
            raw = self._redis.hgetall(SCHEDULES_KEY)
        return {str(name): json.loads(value) for name, value in raw.items()}

    def runs(self, name: str) -> list[Run]:
        """The report's kept runs, newest first."""
        with redis_errors(self._url):
            entries: list[Any] = list(self._redis.zrevrange(runs_key(name), 0, -1, withscores=True))
        return [Run(name, str(entry[0]), float(entry[1])) for entry in entries]

    def _owns(self, info: dict[str, object] | None, token: str) -> bool:
        """Whether ``token`` is the one a report's schedule runs with (its registered owner)."""
        return info is not None and self._sealer.owns(str(info.get("owner", "")), token)

    def runs_of(self, name: str, token: str) -> list[Run]:
        """The report's kept runs that ``token`` made (owns their batch), newest first."""
        kept = self.runs(name)
        owners = self._batches.owners([run.batch_id for run in kept])
        return [
            run
            for run, owner in zip(kept, owners, strict=True)
            if owner is not None and self._sealer.owns(owner, token)
        ]

    def owned_by(self, token: str) -> list[dict[str, Any]]:
        """The reports ``token`` owns or has runs of, each with only the runs ``token`` submitted.

        A run belongs to the owner of its batch, not to the report's current token: when a
        schedule's token changes, the old token keeps its own runs and the new one sees only the
        runs made with it. The read is audited like every other."""
        found = []
        for name, info in sorted(self.described().items()):
            mine = self.runs_of(name, token)
            if not mine and not self._owns(info, token):
                continue
            latest = self._batches.load(mine[0].batch_id) if mine else None
            found.append(
                {
                    "name": name,
                    "cron": info.get("cron"),
                    "interval_seconds": info.get("interval_seconds"),
                    "timezone": info.get("timezone"),
                    "runs": [run.batch_id for run in mine],
                    "latest": latest.public() if latest else None,
                }
            )
        audit("report.list", self._sealer.fingerprint(token), count=len(found))
        return found

    def _finished(self, batch_id: str) -> BatchReport | None:
        saved = self._batches.load_report(batch_id)
        return BatchReport.model_validate_json(saved) if saved is not None else None

    def changes_for(self, report: BatchReport, owner: str) -> RunChanges:
        """What changed in the run ``report`` (a scheduled run's, just built, made by ``owner``)
        since the newest earlier run of the same report, by the same owner, whose report was
        written."""
        assert report.schedule is not None
        name = report.schedule
        earlier = [
            run
            for run in self.runs(name)
            if run.batch_id != report.batch_id and run.started_at < report.created_at
        ]
        owners = self._batches.owners([run.batch_id for run in earlier])
        for run, run_owner in zip(earlier, owners, strict=True):
            if run_owner != owner:  # the schedule's token changed: not the same owner's data
                continue
            previous = self._finished(run.batch_id)
            if previous is not None and previous.final:
                return self._compare(name, previous, report)
        return self._compare(name, None, report)

    def _compare(self, name: str, before: BatchReport | None, after: BatchReport) -> RunChanges:
        return compare_runs(
            None if before is None else before.rows,
            after.rows,
            run=after.batch_id,
            started_at=after.created_at,
            previous_run=None if before is None else before.batch_id,
            previous_started_at=None if before is None else before.created_at,
            report=name,
        )

    def diff(
        self, name: str, token: str, from_run: str | None = None, to_run: str | None = None
    ) -> RunChanges:
        """Two finished runs of ``name`` that ``token`` made, compared; by default the latest
        against the one before it. A run of another report or another token is not found,
        exactly as a missing one; a run still going is refused (its report is not final)."""
        mine = self.runs_of(name, token)
        audit("report.diff", self._sealer.fingerprint(token), report=name)
        if not mine and not self._owns(self.described().get(name), token):
            raise JobNotFound(name, kind="report")
        after = self._pick(name, mine, to_run, None)
        if after is None:
            raise BadRequest(f"report {name!r} has no finished run yet")
        before = self._pick(name, mine, from_run, after)
        if from_run is not None and before is None:
            raise JobNotFound(from_run, kind="run")
        return self._compare(name, before, after)

    def _pick(
        self, name: str, mine: list[Run], wanted: str | None, later_than: BatchReport | None
    ) -> BatchReport | None:
        """A finished run: ``wanted``, or else the newest (older than ``later_than``)."""
        if wanted is not None:
            if wanted not in {run.batch_id for run in mine}:
                raise JobNotFound(wanted, kind="run")
            report = self._finished(wanted)
            if report is None or not report.final:
                raise BadRequest(f"run {wanted} of report {name!r} has not finished yet")
            return report
        for run in mine:
            if later_than is not None and (
                run.batch_id == later_than.batch_id or run.started_at >= later_than.created_at
            ):
                continue
            report = self._finished(run.batch_id)
            if report is not None and report.final:
                return report
        return None

    # Runs asked for by hand ---------------------------------------------------------------

    def request_run(self, name: str, token: str) -> str:
        """Ask the beat to start a run of ``name`` now; returns the request's id.

        Only the report's owner (the token its schedule runs with) may; anyone else is told the
        report does not exist. The beat, not the asker, starts the run: it holds the report's
        token and the scheduler's lock, and applies the tick and overlap rules (see
        ``scheduler.runs``). The request holds no token. While one request for the report
        waits, asking again returns that request (so at most one waits per report)."""
        who = self._sealer.fingerprint(token)
        if not self._owns(self.described().get(name), token):
            audit("report.run.refused", who, report=name)
            raise JobNotFound(name, kind="report")
        request_id = uuid.uuid4().hex
        with redis_errors(self._url):
            # One waiting request per report: asking again joins it (the list stays bounded).
            if not self._redis.set(pending_key(name), request_id, nx=True, ex=PENDING_SECONDS):
                waiting = self._redis.get(pending_key(name))
                if waiting is not None:
                    audit("report.run", who, report=name, request=str(waiting))
                    return str(waiting)
                self._redis.set(pending_key(name), request_id, ex=PENDING_SECONDS)
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(request_key(request_id), mapping={"report": name, "status": "waiting"})
            pipe.expire(request_key(request_id), REQUEST_KEEP_SECONDS)
            pipe.rpush(REQUESTS_KEY, json.dumps({"id": request_id, "report": name}))
            pipe.execute()
        audit("report.run", who, report=name, request=request_id)
        return request_id

    def request_outcome(self, name: str, request_id: str, token: str) -> dict[str, str]:
        """What became of a request for ``name``: status waiting, started (with ``run``) or
        refused (with ``reason``). Empty, as for an unknown or expired request, unless
        ``token`` owns the report and the request is one for it."""
        if not _REQUEST_ID.fullmatch(request_id):
            return {}
        with redis_errors(self._url):
            raw = self._redis.hgetall(request_key(request_id))
        outcome = {str(k): str(v) for k, v in raw.items()}
        if outcome.get("report") != name or not self._owns(self.described().get(name), token):
            return {}
        return outcome

    def withdraw_request(self, request_id: str, name: str) -> bool:
        """Take back a request no beat has taken yet (True); False if a beat already took it."""
        payload = json.dumps({"id": request_id, "report": name})
        with redis_errors(self._url):
            removed = int(self._redis.lrem(REQUESTS_KEY, 1, payload))
            if removed:
                self._redis.delete(request_key(request_id), pending_key(name))
        return removed > 0
