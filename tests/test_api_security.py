"""The HTTP API's defences, against its own Redis so what each request does there can be counted.

The API runs in this process under real uvicorn on loopback (``served``), so a test can also see
what the app read of a request body; Redis is a private ``redis-server`` whose ``INFO
commandstats`` shows exactly which commands a request issued.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import select
import socket
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest
from starlette.types import Message, Receive, Scope, Send

from agentq.batches import Batch
from agentq.dispatch import CAPACITY_KEY
from agentq.errors import JobNotFound
from agentq.jobs import Job
from agentq.logs import configure_logging
from agentq.metrics import observe_attempt
from agentq.settings import Settings
from agentq.store import WORKER_PREFIX
from agentq.traces import AttemptTrace, Step
from api.app import create_app
from api.middleware import BodyLimit
from doubles.processes import Service, free_port, start_redis, wait_until
from producer.client import Client
from scheduler.config import ReportSchedule
from scheduler.runs import ScheduleRuns
from tests.conftest import TOKEN_A, TOKEN_B, Stack

MIB = 1024 * 1024
BEARER_A = {"Authorization": f"Bearer {TOKEN_A}"}
BEARER_B = {"Authorization": f"Bearer {TOKEN_B}"}


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` under real uvicorn on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def own_redis(service_dir: Path) -> Iterator[Service]:
    service = start_redis(service_dir / "api-security-redis")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def settings(stack: Stack, own_redis: Service) -> Settings:
    return stack.settings(redis_url=own_redis.extra["url"], queue="api-security")


@pytest.fixture(scope="module")
def rdb(own_redis: Service) -> redis.Redis:
    return redis.Redis.from_url(own_redis.extra["url"], decode_responses=True)


class BodyCounter:
    """Counts the request body bytes the app pulled from the server."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.pulled = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.pulled += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    made = create_app(settings)

    @made.get("/v1/test-boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret detail of a bug")

    return made


@pytest.fixture(scope="module")
def counter(app: FastAPI) -> BodyCounter:
    return BodyCounter(app)


@pytest.fixture(scope="module")
def api(counter: BodyCounter) -> Iterator[str]:
    with served(counter) as url:
        yield url


def commands(rdb: redis.Redis) -> dict[str, int]:
    """Calls per command since the last reset, without the test's own INFO and CONFIG."""
    stats: dict[str, Any] = rdb.info("commandstats")  # type: ignore[assignment]
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }


@contextmanager
def counting(rdb: redis.Redis) -> Iterator[dict[str, int]]:
    seen: dict[str, int] = {}
    rdb.config_resetstat()
    yield seen
    seen.update(commands(rdb))


# Item 7: the body limit ----------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_gets_413_and_the_server_stops_reading(
    api: str, counter: BodyCounter, settings: Settings
) -> None:
    limit = settings.api_max_body_bytes
    assert limit == 8 * MIB
    port = int(api.rsplit(":", 1)[1])
    head = (
        "POST /v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN_A}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = 64 * 1024
    chunk = f"{piece:x}\r\n".encode() + b"x" * piece + b"\r\n"
    body_total = 9 * MIB
    counter.pulled = 0
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                break
            if writable and (pending or sent < body_total):
                if not pending:
                    pending, sent = chunk, sent + piece
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        while rest.count(b"}") < 2:  # the JSON body: {"error": {...}}
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        # The server closes the connection rather than drain the rest of the body.
        closed = False
        try:
            while sock.recv(65536):
                pass
            closed = True
        except ConnectionResetError:
            closed = True
    status_line = head_part.split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"connection: close" in head_part.lower()
    assert json.loads(rest)["error"]["code"] == "bad_request"
    assert closed
    # The app stopped at the limit, give or take one socket read (uvicorn reads 256 KiB at most).
    assert counter.pulled <= limit + 256 * 1024 < body_total, counter.pulled


def test_body_limit_holds_however_the_body_is_framed(api: str) -> None:
    # A declared length over the limit is refused before any of the body is read.
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {9 * MIB}\r\n\r\n".encode()
        )
        declared = b""
        while chunk := sock.recv(65536):  # it closes the connection after the answer
            declared += chunk
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b'"code":"bad_request"' in declared

    def small_chunks() -> Iterator[bytes]:
        yield b'{"questions": ["Which sites'
        yield b' are there?"]}'

    chunked = httpx.post(
        api + "/v1/batches",
        content=small_chunks(),
        headers={**BEARER_A, "content-type": "application/json"},
    )
    assert chunked.status_code == 202, chunked.text  # a chunked body within the limit is fine


def test_a_lying_content_length_is_counted_not_believed() -> None:
    """Behind a proxy the ASGI server may hand over more than the header says: bytes count."""
    reached: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reached.append(body)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    pieces = [b"x" * MIB for _ in range(3)]

    async def receive() -> Message:
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/jobs",
        "headers": [(b"content-length", b"10")],
    }
    asyncio.run(BodyLimit(app, max_bytes=2 * MIB)(scope, receive, send))
    assert sent[0]["status"] == 413 and not reached
    assert pieces == []  # it read the third MiB, the one over the limit, and no further


# Item 8: bounded metric labels ------------------------------------------------------------


def http_series() -> set[str]:
    text = generate_latest(REGISTRY).decode()
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith("agentq_http_")}


def test_made_up_methods_and_paths_add_a_handful_of_series(api: str) -> None:
    before = http_series()
    rng = random.Random(8)
    methods = ["GET", "POST", "PUT", "FROB", "PROPFIND"]
    with httpx.Client(base_url=api, timeout=10) as http:
        for _ in range(500):
            method = rng.choice([*methods, "".join(rng.choices(string.ascii_uppercase, k=8))])
            path = "/" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))
            http.request(method, rng.choice([path, "/v1/jobs", f"/v1/jobs{path}"]))
    added = http_series() - before
    requests = {s for s in added if s.startswith("agentq_http_requests_total{")}
    assert len(requests) <= 12, sorted(requests)
    assert len(added) <= 12 * 20, len(added)  # each label set: a counter and a histogram
    assert all('method="' + m + '"' not in s for s in added for m in ("FROB", "PROPFIND"))
    assert any('method="other"' in s for s in requests)


def test_tool_and_error_code_labels_come_from_fixed_sets() -> None:
    listed = Step(kind="list_tools", server="infrahub", tools=["infrahub_query_sec_test"])
    calls = [
        Step(kind="tool_call", name="infrahub_query_sec_test"),
        *[Step(kind="tool_call", name=f"made_up_{i}") for i in range(50)],
    ]
    attempt = AttemptTrace(
        attempt=1, started_at=0, finished_at=1, outcome="failed", steps=[listed, *calls]
    )
    observe_attempt(attempt, "failed", "not-a-code-" + "x" * 40)
    text = generate_latest(REGISTRY).decode()
    assert 'tool="infrahub_query_sec_test"' in text
    assert "made_up_" not in text and "not-a-code-" not in text
    assert 'agentq_tool_calls_total{outcome="ok",tool="other"} 50.0' in text
    assert 'agentq_attempts_total{error_code="other",outcome="failed"}' in text


# Item 11: bad input never gets a 500 ---------------------------------------------------------


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [33, 600])
def test_deeply_nested_metadata_is_a_400(api: str, depth: int) -> None:
    bodies = {
        "/v1/jobs": '{"question": "q?", "metadata": %s}',
        "/v1/batches": '{"questions": [{"question": "q?", "metadata": %s}]}',
    }
    for path, template in bodies.items():
        response = httpx.post(
            api + path,
            content=template % nested(depth),
            headers={**BEARER_A, "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"
    fine = httpx.post(
        api + "/v1/jobs",
        json={"question": "q?", "metadata": json.loads(nested(30))},
        headers=BEARER_A,
    )
    assert fine.status_code == 202


def test_ids_of_the_wrong_shape_are_404_like_missing_ones(
    api: str, settings: Settings, rdb: redis.Redis
) -> None:
    client = Client(settings)
    job_id = client.submit("Which sites?", TOKEN_A)
    batch_id = client.submit_batch(["Which sites?"], TOKEN_A)
    missing_job, missing_batch = Job.new_id(), Batch.new_id()
    bad_jobs = [f"{job_id}:x", job_id.upper(), "abc", "*", "a" * 300, f"{job_id[:-1]}%0A"]
    bad_batches = [f"{batch_id}:jobs", f"{batch_id}:x", batch_id[1:], "b*", batch_id.upper()]

    def same_as_missing(path: str, bad: str, missing: str, method: str = "GET") -> None:
        got = httpx.request(method, api + path.format(bad), headers=BEARER_A)
        want = httpx.request(method, api + path.format(missing), headers=BEARER_A)
        assert got.status_code == want.status_code == 404, (bad, got.text)
        assert got.json()["error"]["code"] == "not_found"

    for bad in bad_jobs:
        for path in ("/v1/jobs/{}", "/v1/jobs/{}/trace"):
            same_as_missing(path, bad, missing_job)
        same_as_missing("/v1/jobs/{}", bad, missing_job, "DELETE")
    for bad in bad_batches:
        for path in ("/v1/batches/{}", "/v1/batches/{}/report"):
            same_as_missing(path, bad, missing_batch)
        same_as_missing("/v1/batches/{}", bad, missing_batch, "DELETE")
    # The Client (and so the CLI) refuses them before they become a Redis key.
    with counting(rdb) as seen:
        for bad in [*bad_jobs, f"{batch_id}:jobs"]:
            with pytest.raises(JobNotFound):
                client.get(bad, TOKEN_A)
            with pytest.raises(JobNotFound):
                client.batch(bad, TOKEN_A)
    assert seen == {}, seen


def test_an_unexpected_error_is_a_500_without_detail(api: str) -> None:
    response = httpx.get(api + "/v1/test-boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert response.headers["x-content-type-options"] == "nosniff"


# Item 12: a foreign id takes the path of a missing one ----------------------------------------


def test_another_owners_job_or_batch_is_refused_before_its_record_is_read(
    settings: Settings, rdb: redis.Redis
) -> None:
    client = Client(settings)
    job_id = client.submit("Which sites?", TOKEN_A)
    batch_id = client.submit_batch(["Which sites?"], TOKEN_A)
    profiles = []
    for job, batch in ((job_id, batch_id), (Job.new_id(), Batch.new_id())):
        with counting(rdb) as seen:
            with pytest.raises(JobNotFound):
                client.get(job, TOKEN_B)
            with pytest.raises(JobNotFound):
                client.batch(batch, TOKEN_B)
        profiles.append(seen)
    foreign, missing = profiles
    assert foreign == missing == {"hget": 2}, profiles  # the owner field only, never HGETALL
    with counting(rdb) as own:
        assert client.get(job_id, TOKEN_A).id == job_id
    assert own == {"hget": 1, "hgetall": 1}


# Item 13: health and metrics without SCAN; a 503 names nothing ---------------------------------


def test_health_and_metrics_count_workers_without_scanning(api: str, rdb: redis.Redis) -> None:
    rdb.hset(CAPACITY_KEY, mapping={"sec-live": 4, "sec-dead": 4})
    rdb.set(WORKER_PREFIX + "sec-live", "{}", ex=60)
    with counting(rdb) as seen:
        health = httpx.get(api + "/healthz")
        text = httpx.get(api + "/metrics").text
    assert health.status_code == 200 and health.json()["workers"] == 1
    assert "agentq_workers_alive 1.0" in text
    assert not {"scan", "keys"} & seen.keys(), seen


def test_a_503_says_only_redis_unavailable(settings: Settings) -> None:
    port = free_port()
    url = f"redis://agentq-sec-user:sec-pass-9f3e@127.0.0.1:{port}/7"
    down = create_app(settings.model_copy(update={"redis_url": url}))
    with served(down) as base:
        answers = [
            httpx.get(base + "/healthz", timeout=30),
            httpx.get(base + f"/v1/jobs/{Job.new_id()}", headers=BEARER_A, timeout=30),
            httpx.post(base + "/v1/jobs", json={"question": "q?"}, headers=BEARER_A, timeout=30),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": {"code": "service_unavailable", "message": "Redis unavailable"}
        }
        for part in ("agentq-sec-user", "sec-pass-9f3e", "127.0.0.1", str(port), "/7"):
            assert part not in answer.text


# Item 17: each token sees only its own runs of a report, and the read is audited ---------------


def test_a_reports_runs_are_listed_to_the_token_that_made_them(
    api: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(settings)
    runs = ScheduleRuns(client)
    report = ReportSchedule(
        name="sec-owned-runs",
        interval_seconds=60,
        questions=["Which sites?"],
        token_env="AGENTQ_SEC_REPORT_TOKEN",
    )
    made = {}
    for token, minute in ((TOKEN_A, 1), (TOKEN_B, 2)):  # the schedule's token changes
        monkeypatch.setenv("AGENTQ_SEC_REPORT_TOKEN", token)
        runs.register([report])
        started = runs.start(report, datetime(2026, 1, 6, 1, minute, tzinfo=UTC)).run
        assert started is not None
        made[token] = started
        # No worker runs it here: cancelled, it no longer holds back the next run (overlap).
        client.cancel_batch(started, token)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    for token, other in ((TOKEN_A, TOKEN_B), (TOKEN_B, TOKEN_A)):
        listed = httpx.get(api + "/v1/reports", headers={"Authorization": f"Bearer {token}"})
        (entry,) = [r for r in listed.json()["reports"] if r["name"] == "sec-owned-runs"]
        assert entry["runs"] == [made[token]] and made[other] not in listed.text
        assert entry["latest"]["id"] == made[token]
    events = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert [e["action"] for e in events if e.get("logger") == "agentq.audit"] == [
        "report.list",
        "report.list",
    ]


# Item 22: security headers on every response -------------------------------------------------


def test_every_response_carries_security_headers(api: str) -> None:
    data_csp = "default-src 'none'; frame-ancestors 'none'"
    responses = {
        "/healthz": httpx.get(api + "/healthz"),
        "/metrics": httpx.get(api + "/metrics"),
        "/v1/jobs (401)": httpx.get(api + "/v1/jobs"),
        "/v1/jobs": httpx.get(api + "/v1/jobs", headers=BEARER_A),
        "report csv (404)": httpx.get(
            api + f"/v1/batches/{Batch.new_id()}/report?format=csv", headers=BEARER_A
        ),
        "413": httpx.post(api + "/v1/jobs", content=b"x" * (9 * MIB)),
        "/nowhere": httpx.get(api + "/nowhere"),
        "/": httpx.get(api + "/"),
        "/static/dashboard.js": httpx.get(api + "/static/dashboard.js"),
        "/docs": httpx.get(api + "/docs"),
    }
    for where, response in responses.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", where
        assert headers["x-frame-options"] == "DENY", where
        assert headers["referrer-policy"] == "no-referrer", where
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, where
        if where not in ("/", "/docs"):
            assert csp == data_csp, where
    page = responses["/"]
    assert page.headers["content-security-policy"] == (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    assert "<script>" not in page.text and "<style>" not in page.text  # nothing inline to allow
    assert 'src="/static/dashboard.js"' in page.text
    assert responses["/static/dashboard.js"].headers["content-type"].startswith("text/javascript")
    assert "'sha256-" in responses["/docs"].headers["content-security-policy"]
