"""Idempotency keys (``agentq.idempotency``): a submit repeated with the same key makes its job
or batch once, through the real HTTP API, the real CLI and the Python client, on a real Redis.

No worker runs here: the jobs stay queued. The API's stack is Redis database 2, the in-process
client's database 12; no other test uses either.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agentq.errors import BadRequest, IdempotencyConflict
from agentq.idempotency import idempotency_key
from agentq.store import OWNER_PREFIX
from doubles.processes import Service
from producer.client import Client, Submission
from tests.conftest import TOKEN_A, TOKEN_B, Stack, own_stack, run_cli, start_api
from tests.test_cli_input import assert_one_line_error


@pytest.fixture(scope="module")
def api_stack(stack: Stack) -> Stack:
    own = own_stack(stack, 2, "idempotency-tests")
    redis.Redis.from_url(own.redis_url).flushdb()
    return own


@pytest.fixture(scope="module")
def idem_api(api_stack: Stack, service_dir: Path) -> Iterator[Service]:
    service = start_api(api_stack.env, service_dir)
    api_stack.logs.append(service.log_path)  # the leak scan reads it
    yield service
    service.stop()


@pytest.fixture(scope="module")
def client_stack(stack: Stack) -> Stack:
    own = own_stack(stack, 12, "idempotency-client-tests")
    redis.Redis.from_url(own.redis_url).flushdb()
    return own


@pytest.fixture
def client(client_stack: Stack) -> Client:
    return client_stack.client()


def new_key() -> str:
    return f"retry-{uuid.uuid4()}"


def post(
    api: Service, path: str, body: dict[str, Any], key: str | bytes | None, token: str = TOKEN_A
) -> httpx.Response:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(api.base_url + path, json=body, headers=headers, timeout=30)


def jobs_of(stack: Stack, token: str) -> int:
    """How many jobs ``token`` has submitted in ``stack``'s database."""
    owner = stack.client().sealer.fingerprint(token)
    return int(redis.Redis.from_url(stack.redis_url).zcard(OWNER_PREFIX + owner))


def test_fifty_concurrent_submits_with_one_key_make_one_job(
    idem_api: Service, api_stack: Stack
) -> None:
    key, before = new_key(), jobs_of(api_stack, TOKEN_A)
    start = threading.Barrier(50)
    body = {"question": "Which sites are there?", "metadata": {"ticket": "NET-1"}}

    def one(_: int) -> httpx.Response:
        start.wait()
        return post(idem_api, "/v1/jobs", body, key)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 49 + [202], [a.text for a in answers if a.status_code >= 300]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1 and all(a.json()["status"] == "queued" for a in answers)
    assert jobs_of(api_stack, TOKEN_A) == before + 1
    (job_id,) = ids
    job = httpx.get(
        f"{idem_api.base_url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        timeout=10,
    ).json()
    assert job["status"] == "queued" and job["question"] == "Which sites are there?"

    # Equal once checked (the question is stripped) is the same request: a repeat.
    spaced = {"question": "  Which sites are there?\n", "metadata": {"ticket": "NET-1"}}
    again = post(idem_api, "/v1/jobs", spaced, key)
    assert again.status_code == 200 and again.json()["id"] == job_id
    assert jobs_of(api_stack, TOKEN_A) == before + 1


def test_the_same_key_with_a_different_body_is_a_422(idem_api: Service, api_stack: Stack) -> None:
    key = new_key()
    first = post(idem_api, "/v1/jobs", {"question": "Which sites?"}, key)
    assert first.status_code == 202
    before = jobs_of(api_stack, TOKEN_A)
    for different in (
        {"question": "Which devices?"},
        {"question": "Which sites?", "metadata": {"k": "v"}},
        {"question": "Which sites?", "answer_format": "items"},
        {"question": "Which sites?", "deadline_seconds": 30},
    ):
        conflict = post(idem_api, "/v1/jobs", different, key)
        assert conflict.status_code == 422, conflict.text
        error = conflict.json()["error"]
        assert error["code"] == "idempotency_conflict"
        assert "different job" in error["message"] and "\n" not in error["message"]
    assert jobs_of(api_stack, TOKEN_A) == before
    assert post(idem_api, "/v1/jobs", {"question": "Which sites?"}, key).status_code == 200


def test_a_key_is_scoped_to_the_token(idem_api: Service, api_stack: Stack) -> None:
    key, body = new_key(), {"question": "Which sites?"}
    mine = post(idem_api, "/v1/jobs", body, key, token=TOKEN_A)
    theirs = post(idem_api, "/v1/jobs", body, key, token=TOKEN_B)
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    # A different body under the other token is no conflict either: it is another key.
    other = post(idem_api, "/v1/jobs", {"question": "Which devices?"}, new_key(), token=TOKEN_B)
    assert other.status_code == 202
    repeat = post(idem_api, "/v1/jobs", body, key, token=TOKEN_B)
    assert repeat.status_code == 200 and repeat.json()["id"] == theirs.json()["id"]


def test_a_batch_repeat_returns_the_same_batch_and_makes_no_jobs(
    idem_api: Service, api_stack: Stack
) -> None:
    key = new_key()
    body = {"questions": ["Which sites?", {"question": "Which devices?", "id": "devices"}]}
    first = post(idem_api, "/v1/batches", body, key)
    assert first.status_code == 202 and first.json()["total"] == 2
    after_first = jobs_of(api_stack, TOKEN_A)
    repeat = post(idem_api, "/v1/batches", body, key)
    assert repeat.status_code == 200
    assert repeat.json() == {"id": first.json()["id"], "status": "queued", "total": 2}
    assert jobs_of(api_stack, TOKEN_A) == after_first
    renamed = post(idem_api, "/v1/batches", {**body, "name": "nightly"}, key)
    assert renamed.status_code == 422
    assert renamed.json()["error"]["code"] == "idempotency_conflict"
    # Jobs and batches have keys of their own: the same key makes a job as well.
    job = post(idem_api, "/v1/jobs", {"question": "Which sites?"}, key)
    assert job.status_code == 202 and job.json()["id"] != first.json()["id"]
    assert jobs_of(api_stack, TOKEN_A) == after_first + 1


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "caf\xe9".encode("latin-1")],
    ids=["empty", "too-long", "not-ascii"],
)
def test_an_invalid_key_is_a_400_in_one_line(
    idem_api: Service, api_stack: Stack, key: str | bytes
) -> None:
    before = jobs_of(api_stack, TOKEN_A)
    refused = post(idem_api, "/v1/jobs", {"question": "Which sites?"}, key)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "bad_request" and error["message"].startswith("the idempotency key")
    assert "\n" not in error["message"]
    batch = post(idem_api, "/v1/batches", {"questions": ["Which sites?"]}, key)
    assert batch.status_code == 400
    assert jobs_of(api_stack, TOKEN_A) == before


def test_a_submit_that_fails_after_its_claim_leaves_no_key(
    client: Client, client_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = client.sealer.fingerprint(TOKEN_A)
    plain = redis.Redis.from_url(client_stack.redis_url)
    create = client.store.create

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the write failed")

    for kind in ("job", "batch"):
        key = new_key()
        monkeypatch.setattr(client.store, "create", broken)
        with pytest.raises(RuntimeError):
            if kind == "job":
                client.submit("Which sites?", TOKEN_A, idempotency_key=key)
            else:
                client.submit_batch(["Which sites?"], TOKEN_A, idempotency_key=key)
        assert plain.exists(idempotency_key(owner, kind, key)) == 0
        monkeypatch.setattr(client.store, "create", create)
        if kind == "job":
            made = client.submit("Which sites?", TOKEN_A, idempotency_key=key)
            again = client.submit("Which sites?", TOKEN_A, idempotency_key=key)
            assert client.get(made.id, TOKEN_A).status == "queued"
        else:
            made = client.submit_batch(["Which sites?"], TOKEN_A, idempotency_key=key)
            again = client.submit_batch(["Which sites?"], TOKEN_A, idempotency_key=key)
            assert client.batch(made.id, TOKEN_A).total == 1
        assert made.repeat is False
        assert again == made and again.repeat and not made.repeat
        assert plain.ttl(idempotency_key(owner, kind, key)) > 23 * 3600


def test_a_repeat_waits_for_the_first_submit_to_be_written(
    client_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = client_stack.client(), client_stack.client()
    key = new_key()
    writing, written = threading.Event(), threading.Event()
    create = first.store.create

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        assert written.wait(10)
        return create(*args, **kwargs)

    monkeypatch.setattr(first.store, "create", slow_create)
    claims = 0
    polled = threading.Event()
    claim = second.idempotency.claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        if claims >= 2:  # found the key taken, the job not there yet, and tried again
            polled.set()
        return claim(*args, **kwargs)

    monkeypatch.setattr(second.idempotency, "claim", counted)
    results: dict[str, Submission] = {}

    def submit(name: str, client: Client) -> None:
        results[name] = client.submit("Which sites?", TOKEN_A, idempotency_key=key)

    one = threading.Thread(target=submit, args=("first", first))
    one.start()
    assert writing.wait(10)
    two = threading.Thread(target=submit, args=("second", second))
    two.start()
    assert polled.wait(10)
    assert "second" not in results  # still waiting for the first write
    written.set()
    one.join(10)
    two.join(10)
    assert results["first"].repeat is False
    assert results["second"] == results["first"] and results["second"].repeat


def test_python_keys_are_checked_and_conflicts_raised(client: Client) -> None:
    for bad in ("", "x" * 256, "tab\there", "caf\xe9"):
        with pytest.raises(BadRequest, match="the idempotency key"):
            client.submit("Which sites?", TOKEN_A, idempotency_key=bad)
    key = new_key()
    job_id = client.submit("Which sites?", TOKEN_A, idempotency_key=key)
    assert client.submit(" Which sites? ", TOKEN_A, idempotency_key=key) == job_id
    with pytest.raises(IdempotencyConflict) as raised:
        client.submit("Which sites?", TOKEN_A, allow_writes=False, deadline=5, idempotency_key=key)
    assert raised.value.code == "idempotency_conflict"


def test_the_cli_submits_once_per_key(api_stack: Stack, tmp_path: Path) -> None:
    key, env = new_key(), api_stack.env
    first = run_cli(env, "submit", "Which sites?", "--idempotency-key", key, token=TOKEN_A)
    assert first.code == 0 and "already" not in first.stderr, first.stderr
    again = run_cli(
        api_stack.env,
        "submit", "Which sites?", "--idempotency-key", key, "--json",
        token=TOKEN_A,
    )  # fmt: skip
    assert again.code == 0 and again.json()["id"] == first.stdout.strip()
    assert "already submitted" in again.stderr
    conflict = run_cli(
        api_stack.env, "submit", "Which devices?", "--idempotency-key", key, token=TOKEN_A
    )
    assert_one_line_error(conflict, 2, "already used for a different job")

    questions = tmp_path / "questions.txt"
    questions.write_text("Which sites?\nWhich devices?\n")
    batch = ["batch", "submit", str(questions), "--idempotency-key", key, "--json"]
    made = run_cli(api_stack.env, *batch, token=TOKEN_A)
    repeat = run_cli(api_stack.env, *batch, token=TOKEN_A)
    assert made.code == repeat.code == 0, made.stderr + repeat.stderr
    assert made.json() == repeat.json() and made.json()["total"] == 2
    assert "already submitted" in repeat.stderr and "already" not in made.stderr
