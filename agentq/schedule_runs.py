"""Runs of scheduled reports as everyone reads them: which reports exist, their runs, whose.

Beat (``scheduler.runs``) writes these keys; the API and the CLI only read them. The reading
lives here in the core, so serving ``/v1/reports`` or ``agentq reports`` needs neither beat nor
the schedules file: a report is described in Redis by the beat that registered it, and each run
is a batch remembered under its report's name, newest last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from agentq.audit import audit
from agentq.batches import BatchStore
from agentq.connections import redis_errors
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

    def owned_by(self, token: str) -> list[dict[str, Any]]:
        """The reports ``token`` owns or has runs of, each with only the runs ``token`` submitted.

        A run belongs to the owner of its batch, not to the report's current token: when a
        schedule's token changes, the old token keeps its own runs and the new one sees only the
        runs made with it. The read is audited like every other."""
        found = []
        for name, info in sorted(self.described().items()):
            kept = self.runs(name)
            owners = self._batches.owners([run.batch_id for run in kept])
            mine = [
                run
                for run, owner in zip(kept, owners, strict=True)
                if owner is not None and self._sealer.owns(owner, token)
            ]
            if not mine and not self._sealer.owns(str(info.get("owner", "")), token):
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
