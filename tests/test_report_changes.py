"""Nightly reports that say what changed: diffs between runs, structured answers, alerts.

Runs are started the way beat starts them (``scheduler.runs.ScheduleRuns``) and run on a real
worker against an MCP double of their own, whose inventory changes between runs; the diffs are
read through the real ``agentq`` CLI, the HTTP API and the Python client. The beat's own
behaviour (overlap, runs by hand) is tested with a real ``agentq beat`` process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from agentq.batches import Batch
from agentq.errors import BadRequest, JobNotFound
from agentq.jobs import JobStatus
from agentq.report_changes import compare_runs, render_changes, word_diff
from agentq.reports import BatchReport, ReportRow, render
from agentq.schedule_runs import REQUESTS_KEY
from agentq.webhooks.queue import DUE_KEY
from agentq.webhooks.signing import tenant_secret
from doubles.processes import wait_until
from producer.client import Client
from scheduler.config import ReportSchedule
from scheduler.runs import ScheduleRuns, runs_key
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    Double,
    Receiver,
    Stack,
    own_stack,
    run_cli,
    start_api,
    wait_idle,
)
from tests.test_schedules import start_beat

DEVICES = "Which devices are there?"
SITES = "Which sites are there?"
# A device added, one removed, one renamed.
CHURN = (
    {"op": "add", "kind": "DcimDevice", "name": "atl1-edge9", "like": "atl1-edge1"},
    {"op": "remove", "kind": "DcimDevice", "name": "ord1-leaf1"},
    {"op": "rename", "kind": "DcimDevice", "name": "dfw1-spine1", "to": "dfw1-spine9"},
)
GONE = ["dfw1-spine1", "ord1-leaf1"]
NEW = ["atl1-edge9", "dfw1-spine9"]
START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def schedule_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTQ_TEST_SCHEDULE_TOKEN", TOKEN_A)


@pytest.fixture
def inventory(changing_mcp: Double) -> Iterator[Double]:
    """The changing MCP double, back to its first inventory and knobs after the test."""
    changing_mcp.reset()
    yield changing_mcp
    changing_mcp.reset()


def schedule(name: str, questions: list[Any], **extra: Any) -> ReportSchedule:
    return ReportSchedule.model_validate(
        {
            "name": name,
            "interval_seconds": 3600,
            "questions": questions,
            "token_env": "AGENTQ_TEST_SCHEDULE_TOKEN",
            **extra,
        }
    )


def run_once(runs: ScheduleRuns, client: Client, report: ReportSchedule, hour: int) -> str:
    """Start the report's run of hour ``hour`` after START and wait until its report is
    written (by the worker, with its changes since the previous run)."""
    started = runs.start(report, START + timedelta(hours=hour))
    assert started.run is not None, started.reason
    wait_until(
        lambda: client.batches.load_report(str(started.run)) is not None,
        60,
        interval=0.05,
        what=f"the report of run {started.run}",
    )
    return started.run


def diff_cli(stack: Stack, *args: str, token: str = TOKEN_A) -> Any:
    return run_cli(stack.env, "reports", "diff", *args, token=token)


def test_a_changed_inventory_shows_in_the_diff_as_words_and_as_items(
    reporting: Stack, inventory: Double, service_dir: Path
) -> None:
    client = reporting.client()
    runs = ScheduleRuns(client)
    text = schedule("fleet-text", [{"question": DEVICES, "id": "devices"}, SITES])
    items = schedule("fleet-items", [DEVICES], answer_format="items")
    runs.register([text, items])
    first = run_once(runs, client, text, 0)
    first_items = run_once(runs, client, items, 0)
    only = diff_cli(reporting, "fleet-text")
    assert only.code == 0, only.stderr
    assert "no earlier finished run" in only.stderr and "has no earlier run" in only.stdout

    assert inventory.change_inventory(*CHURN)["renamed"] == [["dfw1-spine1", "dfw1-spine9"]]
    second = run_once(runs, client, text, 1)
    second_items = run_once(runs, client, items, 1)

    # Free text: a word diff naming exactly what appeared and what disappeared.
    as_json = diff_cli(reporting, "fleet-text", "--format", "json")
    assert as_json.code == 1, as_json.stderr
    diff = as_json.json()
    assert (diff["previous_run"], diff["run"]) == (first, second)
    assert diff["counts"] == {
        "changed": 1, "added": 0, "removed": 0, "newly_failing": 0, "recovered": 0,
        "unchanged": 1,
    }  # fmt: skip
    changed = [q for q in diff["questions"] if q["kind"] == "changed"]
    assert [q["key"] for q in changed] == ["devices"]
    assert sorted(changed[0]["removed"]) == GONE and sorted(changed[0]["added"]) == NEW
    text_out = diff_cli(reporting, "fleet-text")
    assert text_out.code == 1 and "\x1b" not in text_out.stdout  # not a terminal: no colour
    assert "changed: Which devices are there?" in text_out.stdout
    assert "removed: [-dfw1-spine1-], [-ord1-leaf1-]" in text_out.stdout
    assert "added:   {+atl1-edge9+}, {+dfw1-spine9+}" in text_out.stdout
    assert "1 changed, 0 added, 0 removed, 0 newly failing, 0 recovered, 1 unchanged" in (
        text_out.stdout
    )
    md = render_changes(client.report_diff("fleet-text", TOKEN_A), "md")
    assert "- removed: ~~dfw1-spine1~~, ~~ord1-leaf1~~" in md
    assert "- added: **atl1-edge9**, **dfw1-spine9**" in md

    # Items: added and removed by key, nothing else.
    items_cli = diff_cli(reporting, "fleet-items", "--format", "json")
    assert items_cli.code == 1
    (question,) = [q for q in items_cli.json()["questions"] if q["kind"] == "changed"]
    assert sorted(i["name"] for i in question["items_added"]) == NEW
    assert sorted(i["name"] for i in question["items_removed"]) == GONE
    assert question["items_changed"] == [] and question["segments"] == []
    items_diff = client.report_diff("fleet-items", TOKEN_A)
    items_text = render_changes(items_diff, "text")
    assert "[-- dfw1-spine1-]" in items_text and "{++ atl1-edge9+}" in items_text
    items_md = render_changes(items_diff, "md")
    assert "| added | **atl1-edge9** |" in items_md and "| removed | ~~ord1-leaf1~~ |" in items_md

    # The run's own report opens with its changes, in every format.
    shown = run_cli(reporting.env, "reports", "show", "fleet-items", token=TOKEN_A).stdout
    assert shown.index("## Changes since the previous run") < shown.index("## Answers")
    assert "| name |" in shown and "| atl1-edge9 |" in shown  # the items, as a table
    assert "- data read from " in shown
    report = BatchReport.model_validate_json(str(client.batches.load_report(second_items)))
    assert report.changes is not None and report.changes.previous_run == first_items
    assert report.rows[0].items is not None and len(report.rows[0].items) == 12
    csv_out = render(client.batch_report(second, TOKEN_A), "csv")
    header, devices_row, sites_row = csv_out.splitlines()[:3]
    assert header.startswith("index,change,question_id,")
    assert devices_row.startswith("1,changed,devices,") and sites_row.startswith("2,unchanged,,")

    # The same through the API (explicit runs) and the Python client.
    api = start_api(reporting.env, service_dir)
    try:
        url = f"{api.base_url}/v1/reports/fleet-text/diff"
        headers = {"authorization": f"Bearer {TOKEN_A}"}
        got = httpx.get(url, params={"from": first, "to": second}, headers=headers, timeout=10)
        assert got.status_code == 200 and got.json() == diff
        swapped = httpx.get(url, params={"from": second, "to": first}, headers=headers, timeout=10)
        assert sorted(swapped.json()["questions"][0]["added"]) == GONE
        foreign = httpx.get(url, headers={"authorization": f"Bearer {TOKEN_B}"}, timeout=10)
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
        bad_run = httpx.get(url, params={"from": "b" + "0" * 32}, headers=headers, timeout=10)
        assert bad_run.status_code == 404
    finally:
        api.stop()
    assert client.report_diff("fleet-text", TOKEN_A).model_dump(mode="json") == diff
    unknown = diff_cli(reporting, "no-such-report")
    assert unknown.code == 2 and "report 'no-such-report' not found" in unknown.stderr


def test_only_a_change_is_notified_once_signed_and_failures_are_tracked(
    reporting: Stack, inventory: Double
) -> None:
    client = reporting.client()
    runs = ScheduleRuns(client)
    receiver = Receiver(failures=0)
    try:
        report = schedule(
            "quiet-nights", [DEVICES], notify={"webhook": receiver.url, "when": "changed"}
        )
        runs.register([report])
        run_once(runs, client, report, 0)
        unchanged = run_once(runs, client, report, 1)
        same = diff_cli(reporting, "quiet-nights")
        assert same.code == 0 and "nothing changed" in same.stdout
        assert "0 changed, 0 added, 0 removed, 0 newly failing, 0 recovered, 1 unchanged" in (
            same.stdout
        )
        inventory.change_inventory(CHURN[0])
        changed = run_once(runs, client, report, 2)
        wait_until(lambda: receiver.requests, 30, what="the report's webhook")
        wait_until(
            lambda: client.redis.zscore(DUE_KEY, f"batch:{changed}") is None,
            30,
            what="the delivery to be settled",
        )
        # The first run (nothing to compare) and the unchanged one sent nothing.
        assert len(receiver.requests) == 1
        headers, body = receiver.requests[0]
        secret = tenant_secret(
            reporting.env["AGENTQ_WEBHOOK_SECRET"], client.sealer.fingerprint(TOKEN_A)
        )
        payload = Webhook(secret).verify(body, headers)  # the reference verifier
        assert payload["type"] == "report.run_ended"
        data = payload["data"]
        assert (data["report"], data["run"]) == ("quiet-nights", changed)
        assert data["changes"]["previous_run"] == unchanged
        assert data["changes"]["counts"]["changed"] == 1
        assert data["changes"]["changed"] == [
            {"key": DEVICES, "question": DEVICES, "kind": "changed"}
        ]
        assert TOKEN_A not in body.decode()
    finally:
        receiver.server.shutdown()

    # A question failing tonight is newly failing; succeeding again, it has recovered.
    flaky = schedule("flaky-nights", [SITES])
    runs.register([flaky])
    run_once(runs, client, flaky, 0)
    inventory.configure(fault="http_401")
    run_once(runs, client, flaky, 1)
    failing = diff_cli(reporting, "flaky-nights", "--format", "json")
    assert failing.code == 1
    assert [q["kind"] for q in failing.json()["questions"]] == ["newly_failing"]
    assert failing.json()["questions"][0]["after_status"] == JobStatus.FAILED
    inventory.configure(fault="none")
    run_once(runs, client, flaky, 2)
    back = diff_cli(reporting, "flaky-nights")
    assert back.code == 1 and "recovered: Which sites are there?" in back.stdout


def test_structured_answers_for_a_single_job(reporting: Stack) -> None:
    client = reporting.client()
    job_id = client.submit(DEVICES, TOKEN_A, answer_format="items", item_key="device")
    job = client.wait(job_id, TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.items is not None and len(job.items) == 12
    assert all(set(item) == {"device"} for item in job.items)
    assert json.loads(str(job.answer)) == {"items": job.items}
    shown = run_cli(reporting.env, "result", job_id, "--json", token=TOKEN_A).json()
    assert shown["items"] == job.items and shown["answer_format"] == "items"
    table = run_cli(reporting.env, "wait", job_id, token=TOKEN_A).stdout
    assert "12 items" in table and "atl1-edge1" in table
    for fmt, key, message in [
        ("xml", None, "answer_format must be one of text, items"),
        ("text", "name", "item_key only applies with answer_format items"),
        ("items", "1 bad", "item_key must be a field name"),
    ]:
        with pytest.raises(BadRequest, match=message):
            client.submit(DEVICES, TOKEN_A, answer_format=fmt, item_key=key)


def test_beat_skips_a_tick_while_the_previous_run_runs_and_starts_runs_by_hand(
    reporting: Stack, inventory: Double, service_dir: Path, tmp_path: Path
) -> None:
    client = reporting.client()
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text(
        json.dumps(
            {
                "reports": [
                    {
                        "name": "every-two-seconds",
                        "interval_seconds": 2,
                        "questions": [SITES],
                        "token_env": "AGENTQ_TEST_SCHEDULE_TOKEN",
                    },
                    {
                        "name": "by-hand",
                        "cron": "0 0 1 1 *",  # not due while the test runs: started by hand only
                        "questions": [SITES],
                        "token_env": "AGENTQ_TEST_SCHEDULE_TOKEN",
                    },
                ]
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQ_")}
    env.update(reporting.env, AGENTQ_TEST_SCHEDULE_TOKEN=TOKEN_A)
    beat = start_beat(env, schedules, service_dir)
    try:
        registered = client.scheduled.described
        wait_until(lambda: "by-hand" in registered(), 30, interval=0.1, what="beat's start")
        started = run_cli(reporting.env, "reports", "run", "by-hand", "--json", token=TOKEN_A)
        assert started.code == 0, started.stderr
        run = started.json()["run"]
        assert client.scheduled.runs("by-hand")[0].batch_id == run
        assert client.wait_batch(run, TOKEN_A, timeout=60).status == "succeeded"
        with pytest.raises(JobNotFound):  # only the report's owner may start it
            client.scheduled.request_run("by-hand", TOKEN_B)

        # A run that cannot end yet: the next ticks start nothing, and say so.
        inventory.configure(tool_latency_ms=60_000)
        skipped = "scheduled report skipped: its previous run is still running"
        wait_until(lambda: skipped in beat.log_text(), 30, interval=0.1, what="a skipped tick")
        kept = client.scheduled.runs("every-two-seconds")
        assert len(kept) >= 1 and client.batch(kept[0].batch_id, TOKEN_A).status == "running"
        refused = run_cli(reporting.env, "reports", "run", "every-two-seconds", token=TOKEN_A)
        assert refused.code == 1 and "not started" in refused.stderr
        assert beat.alive()
    finally:
        inventory.configure(tool_latency_ms=0)
        beat.stop()
        for name in ("every-two-seconds", "by-hand"):
            for kept_run in client.scheduled.runs(name):
                client.cancel_batch(kept_run.batch_id, TOKEN_A)
        wait_idle(reporting)
    assert client.redis.zcard(runs_key("every-two-seconds")) == len(kept)


# --- the comparison itself ---------------------------------------------------------------


def row(question: str, answer: str | None = None, **fields: Any) -> ReportRow:
    status = fields.pop("status", "succeeded" if answer is not None else "failed")
    return ReportRow(index=0, job_id="j", question=question, status=status, answer=answer, **fields)


def compare(before: list[ReportRow], after: list[ReportRow]) -> Any:
    return compare_runs(before, after, run="b2", started_at=2.0, previous_run="b1")


def test_items_change_by_key_field_by_field() -> None:
    old = [{"name": "a", "role": "edge"}, {"name": "b", "role": "leaf"}]
    new = [{"name": "a", "role": "spine"}, {"name": "c", "role": "leaf"}]
    changes = compare(
        [row("q", "x", items=old, item_key="name")], [row("q", "y", items=new, item_key="name")]
    )
    (q,) = changes.questions
    assert (q.kind, q.added, q.removed) == ("changed", ["c"], ["b"])
    assert [(c.key, [(f.field, f.before, f.after) for f in c.fields]) for c in q.items_changed] == [
        ("a", [("role", "edge", "spine")])
    ]
    text = render_changes(changes, "text")
    assert "~ a: role: [-edge-] -> {+spine+}" in text and "+ c (role=leaf)" in text


def test_questions_match_by_id_then_text_and_repeats_pair_in_order() -> None:
    before = [row("Old wording?", "1", question_id="q1"), row("Same?", "x"), row("Same?", "y")]
    after = [row("New wording?", "1", question_id="q1"), row("Same?", "x"), row("Same?", "z")]
    after.append(row("Brand new?", "n"))
    changes = compare(before, after)
    assert [(q.key, q.kind) for q in changes.questions] == [
        ("q1", "unchanged"),
        ("Same?", "unchanged"),
        ("Same?#2", "changed"),
        ("Brand new?", "added"),
    ]
    gone = compare(after, before)
    assert ("Brand new?", "removed") in [(q.key, q.kind) for q in gone.questions]


def test_failing_twice_the_same_way_is_unchanged_and_a_new_error_is_a_change() -> None:
    same = compare([row("q", error_code="timeout")], [row("q", error_code="timeout")])
    other = compare([row("q", error_code="timeout")], [row("q", error_code="auth_error")])
    assert [q.kind for q in same.questions] == ["unchanged"] and not same.changed
    assert [q.kind for q in other.questions] == ["changed"] and other.changed


def test_word_diff_keeps_list_commas_out_of_the_changes() -> None:
    segments = word_diff("Found 3: a, b, c", "Found 3: a, c, d")
    assert [(s.op, s.text) for s in segments if s.op != "same"] == [
        ("removed", "b"),
        ("added", "d"),
    ]


def test_model_text_in_a_diff_is_only_text() -> None:
    evil = "[click](http://evil.example) <img src=x> \x1b]8;;http://evil\x07link\x1b]8;;\x07"
    changes = compare([row("q", "safe")], [row("q", evil)])
    md = render_changes(changes, "md")
    assert "](http" not in md and "<img" not in md and "\x1b" not in md
    assert "\x1b" not in render_changes(changes, "text")


def test_overlap_queue_starts_the_waiting_run_once_the_previous_one_ends(stack: Stack) -> None:
    client = own_stack(stack, 11, "overlap-tests").client()  # no worker: runs stay running
    runs = ScheduleRuns(client)
    report = schedule("queued-nights", [SITES], overlap="queue")
    runs.register([report])
    first = runs.start(report, START).run
    assert first is not None
    waiting = runs.start(report, START + timedelta(hours=1))
    assert waiting.run is None and str(waiting.reason).startswith("queued: the previous run")
    assert runs.start_queued({report.name: report}) == 0  # the first still runs
    client.cancel_batch(first, TOKEN_A)
    assert runs.start_queued({report.name: report}) == 1
    assert runs.start_queued({report.name: report}) == 0  # one waiting run, started once
    started = client.scheduled.runs("queued-nights")
    assert len(started) == 2 and started[1].batch_id == first
    client.cancel_batch(started[0].batch_id, TOKEN_A)


@pytest.mark.parametrize(
    ("when", "status", "changed", "due"),
    [
        ("always", "succeeded", False, True),
        ("changed", "succeeded", False, False),
        ("changed", "succeeded", True, True),
        ("failed", "succeeded", True, False),
        ("failed", "completed_with_failures", False, True),
    ],
)
def test_notify_when_decides_from_the_runs_changes_and_status(
    when: str, status: str, changed: bool, due: bool
) -> None:
    counts = {"succeeded": 2} if status == "succeeded" else {"succeeded": 1, "failed": 1}
    batch = Batch(
        id="b" + "0" * 32, owner="o", total=2, counts=counts, created_at=1.0, max_inflight=1,
        schedule="r", notify_when=when,
    )  # fmt: skip
    before = [row("q", "same")]
    changes = compare(before, [row("q", "different" if changed else "same")])
    report = BatchReport(
        batch_id=batch.id, status=str(batch.status), created_at=1.0, total=2, counts=counts,
        changes=changes,
    )  # fmt: skip
    assert batch.notify_due(report) is due


def test_at_most_one_run_by_hand_waits_per_report(stack: Stack) -> None:
    client = own_stack(stack, 11, "overlap-tests").client()  # no beat takes requests here
    ScheduleRuns(client).register([schedule("asked-often", [SITES])])
    first = client.scheduled.request_run("asked-often", TOKEN_A)
    assert all(client.scheduled.request_run("asked-often", TOKEN_A) == first for _ in range(5))
    assert client.redis.llen(REQUESTS_KEY) == 1
    with pytest.raises(TimeoutError, match="no beat took the request"):
        client.run_report("asked-often", TOKEN_A, timeout=0.2)  # joins it, then withdraws it
    assert client.redis.llen(REQUESTS_KEY) == 0
    assert client.scheduled.request_outcome("asked-often", first, TOKEN_A) == {}
