"""Batch audits through the real CLI and real workers: counts, progress, reports, caps, cancel,
webhooks, and bad batch files refused whole."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import redis

from agentq.batches import batch_key, report_key
from agentq.errors import BadRequest
from agentq.jobs import JobStatus
from agentq.webhooks.queue import DUE_KEY
from agentq.webhooks.signing import generate_webhook_secret, tenant_secret, verify
from doubles.processes import Service, wait_until
from tests.conftest import TOKEN_A, TOKEN_B, CliResult, Receiver, Stack, own_stack, run_cli
from tests.test_cli_input import assert_one_line_error


def write_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "site"])
        for i in range(count):
            writer.writerow([f"Which devices are in site {i}?", f"site-{i}"])
    return path


def batch_cli(stack: Stack, *args: str, token: str = TOKEN_A, **env: str) -> CliResult:
    return run_cli({**stack.env, **env}, "batch", *args, token=token, timeout=240)


def test_a_200_question_batch_end_to_end(
    stack: Stack, worker: Service, tmp_path: Path, redis_client: redis.Redis
) -> None:
    source = write_csv(tmp_path / "audit.csv", 200)
    submitted = batch_cli(stack, "submit", str(source), "--name", "nightly audit", "--json")
    assert submitted.code == 0, submitted.stderr
    batch_id = submitted.json()["id"]
    assert submitted.json()["total"] == 200

    waited = batch_cli(stack, "wait", batch_id)
    assert waited.code == 0, waited.stderr
    last_state = waited.stderr.strip().splitlines()[-1]  # the progress bar, whole in 80 columns
    assert "200/200" in last_state and "ok 200 failed 0" in last_state and "/s" in last_state
    assert "…" not in last_state
    status = batch_cli(stack, "status", batch_id, "--json").json()
    assert status["status"] == "succeeded"
    assert status["counts"] == {
        "queued": 0, "running": 0, "succeeded": 200, "failed": 0, "cancelled": 0,
    }  # fmt: skip

    # The final report is written by a worker once the last job ends, and kept.
    wait_until(lambda: redis_client.exists(report_key(batch_id)) == 1, 30, what="the report")
    as_json = json.loads(batch_cli(stack, "report", batch_id, "--format", "json").stdout)
    assert as_json["final"] is True and as_json["total"] == 200
    assert [row["index"] for row in as_json["rows"]] == list(range(1, 201))
    assert as_json["rows"][7]["question"] == "Which devices are in site 7?"
    assert as_json["rows"][7]["metadata"] == {"site": "site-7"}
    assert all(row["status"] == "succeeded" and row["answer"] for row in as_json["rows"])
    assert as_json["totals"]["tool_calls"] == sum(r["tool_calls"] for r in as_json["rows"]) > 0
    assert as_json["totals"]["input_tokens"] > 0

    rows = list(
        csv.DictReader(io.StringIO(batch_cli(stack, "report", batch_id, "--format", "csv").stdout))
    )
    assert len(rows) == 200
    assert rows[0]["status"] == "succeeded" and json.loads(rows[0]["metadata"]) == {
        "site": "site-0"
    }

    out = tmp_path / "report.md"
    written = batch_cli(stack, "report", batch_id, "--output", str(out))
    assert written.code == 0 and written.stdout == ""
    markdown = out.read_text()
    assert markdown.startswith("# Batch report: nightly audit")
    question_rows = [row for row in markdown.splitlines() if "| Which devices are in" in row]
    assert len(question_rows) == 200
    assert all("| succeeded |" in line for line in question_rows)
    listed = batch_cli(stack, "list", "--json").json()
    assert batch_id in [b["id"] for b in listed]


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.txt", b"\n# only a comment\n", "empty.txt: no questions in the file"),
    ("questions.xlsx", b"whatever", "unknown file type '.xlsx'"),
    ("bad.yaml", b"- one\n- [unclosed\n", "bad.yaml: invalid YAML at line"),
    ("bad.json", b'["one", ]', "bad.json: invalid JSON at line 1"),
    ("nocol.csv", b"text,site\nq,atl1\n", "nocol.csv: the header row has no 'question' column"),
    ("extra.yaml", b"- question: q1\n  token: x\n", "extra.yaml: item 1: unknown key 'token'"),
    ("blank.json", b'["ok", "  "]', "blank.json: item 2: the question is empty"),
    ("latin1.txt", "caf\xe9?".encode("latin-1"), "latin1.txt: not UTF-8 text"),
    ("many.txt", b"q1\nq2\nq3\nq4\n", "many.txt: 4 questions; the limit is 3"),
    ("long.txt", b"ok\n" + b"x" * 200 + b"\n", "question 2: the question is 200 bytes"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_batch_files_enqueue_nothing(
    stack: Stack, tmp_path: Path, redis_client: redis.Redis, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = set(redis_client.keys("agentq:job:*")) | set(redis_client.keys("agentq:batch:*"))
    result = batch_cli(
        stack,
        "submit",
        str(path),
        AGENTQ_MAX_BATCH_QUESTIONS="3",
        AGENTQ_MAX_QUESTION_BYTES="100",
    )
    assert_one_line_error(result, 2, message)
    after = set(redis_client.keys("agentq:job:*")) | set(redis_client.keys("agentq:batch:*"))
    assert after == before


def test_batch_reads_need_the_submitting_token_and_cancel_stops_every_job(
    stack: Stack, tmp_path: Path
) -> None:
    idle = own_stack(stack, 10, "batch-cancel-tests")  # no worker: the jobs stay queued
    source = tmp_path / "q.txt"
    source.write_text("\n".join(f"Question {i}?" for i in range(30)))
    batch_id = batch_cli(idle, "submit", str(source)).stdout.strip()
    unknown = "b" + "0" * 32
    for command in ("status", "wait", "report", "cancel"):
        theirs = batch_cli(idle, command, batch_id, token=TOKEN_B)
        nobodys = batch_cli(idle, command, unknown, token=TOKEN_B)
        assert theirs.code == nobodys.code == 2
        assert theirs.stderr.replace(batch_id, "ID") == nobodys.stderr.replace(unknown, "ID")
    cancelled = batch_cli(idle, "cancel", batch_id, "--json").json()
    assert cancelled["cancelled_jobs"] == 30
    status = batch_cli(idle, "status", batch_id, "--json").json()
    assert status["status"] == "cancelled" and status["counts"]["cancelled"] == 30
    assert batch_cli(idle, "wait", batch_id).code == 1


def test_a_batch_never_runs_more_than_its_cap(capped: Stack) -> None:
    client = capped.client()  # 10 slots, the slow model: a batch capped at 2 shows it
    batch_id = client.submit_batch(
        [f"Which devices in site {i}?" for i in range(12)], TOKEN_A, max_inflight=2
    )
    peak = 0

    def done() -> bool:
        nonlocal peak
        batch = client.batch(batch_id, TOKEN_A)
        peak = max(peak, batch.counts["running"])
        return batch.ended == batch.total

    wait_until(done, 60, interval=0.02, what="the capped batch")
    assert 1 <= peak <= 2
    assert client.batch(batch_id, TOKEN_A).counts["succeeded"] == 12


def test_webhooks_are_signed_and_retried_after_a_500(roomy: Stack, receiver: Receiver) -> None:
    client = roomy.client()
    # Deliveries are signed with the submitting tenant's own secret, derived from the master.
    master = roomy.env["AGENTQ_WEBHOOK_SECRET"]
    secret = tenant_secret(master, client.sealer.fingerprint(TOKEN_A))
    questions = ["Which sites?", "Which devices?", "Which prefixes?"]
    batch_id = client.submit_batch(questions, TOKEN_A, webhook_url=receiver.url)
    wait_until(lambda: len(receiver.requests) >= 2, 60, what="the batch webhook's retry")
    (first_headers, _), (headers, body) = receiver.requests[:2]
    assert first_headers["webhook-id"] == headers["webhook-id"] == f"batch_{batch_id}"
    assert verify(secret, headers, body)
    assert not verify(generate_webhook_secret(), headers, body)
    assert not verify(master, headers, body)
    payload = json.loads(body)
    assert payload["type"] == "batch.ended"
    assert payload["data"]["id"] == batch_id and payload["data"]["counts"]["succeeded"] == 3

    job_id = client.submit("Which devices?", TOKEN_A, webhook_url=receiver.url)
    wait_until(lambda: len(receiver.requests) >= 3, 60, what="the job webhook")
    headers, body = receiver.requests[2]
    assert headers["webhook-id"] == f"job_{job_id}" and verify(secret, headers, body)
    assert json.loads(body)["data"]["status"] == JobStatus.SUCCEEDED
    assert TOKEN_A not in body.decode()
    # Both deliveries are settled (nothing left to send or retry): no more will come.
    wait_until(
        lambda: (
            client.redis.zscore(DUE_KEY, f"batch:{batch_id}") is None
            and client.redis.zscore(DUE_KEY, f"job:{job_id}") is None
        ),
        30,
        what="the deliveries to be settled",
    )
    assert len(receiver.requests) == 3  # one retry after the 500, no duplicates


def test_webhook_urls_are_checked_at_submit(stack: Stack) -> None:
    client = own_stack(
        stack,
        13,
        "webhook-url-tests",
        AGENTQ_WEBHOOK_SECRET=generate_webhook_secret(),
        AGENTQ_WEBHOOK_ALLOW_HTTP="true",
    ).client()
    for url, message in [
        ("http://127.0.0.1:9/hook", "private or local address"),
        ("ftp://example.com/hook", "must be an http:// or https:// URL"),
        ("https://user:pw@example.com/hook", "must not contain credentials"),
    ]:
        with pytest.raises(BadRequest, match=message):
            client.submit_batch(["q?"], TOKEN_A, webhook_url=url)
    no_secret = own_stack(stack, 13, "webhook-url-tests").client()
    with pytest.raises(BadRequest, match="AGENTQ_WEBHOOK_SECRET"):
        no_secret.submit("q?", TOKEN_A, webhook_url="https://example.com/hook")
    assert not no_secret.redis.keys(batch_key("*"))


def test_a_10000_question_batch_is_accepted_whole(stack: Stack) -> None:
    client = own_stack(stack, 15, "big-batch-tests").client()  # no worker: nothing runs
    batch_id = client.submit_batch([f"Question {i}?" for i in range(10_000)], TOKEN_A)
    batch = client.batch(batch_id, TOKEN_A)
    assert batch.total == 10_000 and batch.counts["queued"] == 10_000
    ids = [i for chunk in client.batches.job_ids(batch_id) for i in chunk]
    assert len(ids) == len(set(ids)) == 10_000
    assert client.cancel_batch(batch_id, TOKEN_A) == 10_000
    assert client.batch(batch_id, TOKEN_A).counts["cancelled"] == 10_000
