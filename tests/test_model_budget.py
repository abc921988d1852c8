"""The model provider's limits: the model double enforcing them as a provider does, and
agentq's shared budget (``agentq.model_budget`` through ``worker.budget_transport``) keeping
two independent clients under them, against a real Redis and the real double over loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import redis
import redis.asyncio as aioredis
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from agentq.model_budget import MODEL_BUDGET_KEY, ModelBudget, estimate_tokens
from doubles.model_server import duration
from doubles.processes import free_port, wait_until
from tests.conftest import Double, start_model_double
from worker.budget_transport import BudgetTransport, parse_duration, retry_wait, usage_tokens

MESSAGES = [{"role": "user", "content": "Which sites are there?"}]


@pytest.fixture(scope="module")
def limited_model(service_dir: Path) -> Iterator[Double]:
    double = start_model_double(service_dir, "--policy", "echo")
    try:
        yield double
    finally:
        double.service.stop()


@pytest.fixture
def model(limited_model: Double) -> Double:
    limited_model.reset()
    return limited_model


def complete(double: Double, **extra: Any) -> httpx.Response:
    body = {"model": "demo-model", "messages": MESSAGES, **extra}
    return httpx.post(f"{double.url}/v1/chat/completions", json=body, timeout=10)


def stats(double: Double) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{double.url}/_double/stats", timeout=5).json()
    return result


# --- the double ------------------------------------------------------------------------------


def test_durations_are_written_and_read_as_openai_does() -> None:
    assert [duration(s) for s in (0.02, 1.5, 360.0, 61.25)] == ["20ms", "1.5s", "6m0s", "1m1.25s"]
    assert [parse_duration(t) for t in ("20ms", "1.5s", "6m0s", "2", "1h2m")] == [
        0.02, 1.5, 360.0, 2.0, 3720.0,
    ]  # fmt: skip


def test_double_sends_the_limits_headers_and_charges_what_was_used(model: Double) -> None:
    model.configure(tpm=6000, rpm=60)  # 100 tokens, 1 request a second: hardly refilled
    response = complete(model, max_tokens=5000)
    assert response.status_code == 200
    headers = response.headers
    assert headers["x-ratelimit-limit-tokens"] == "6000"
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "59"
    used = response.json()["usage"]["total_tokens"]
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    # Admitted with its 5,000-token maximum, charged what it used once answered.
    assert 6000 - used - 1 <= remaining <= 6000 - used + 20
    assert parse_duration(headers["x-ratelimit-reset-tokens"]) == pytest.approx(
        (6000 - remaining) / 100, abs=0.02
    )
    assert complete(model).headers["x-ratelimit-remaining-requests"] == "58"


def test_double_refuses_past_a_limit_with_retry_after_and_refills(model: Double) -> None:
    model.configure(rpm=2)
    assert [complete(model).status_code for _ in range(2)] == [200, 200]
    refused = complete(model)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) == 30  # one request in 30 s at 2 per minute
    assert 29_000 <= int(refused.headers["retry-after-ms"]) <= 30_000
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert parse_duration(refused.headers["x-ratelimit-reset-requests"]) == pytest.approx(60, 1)
    assert stats(model)["rate_limited"] == 1
    # 6,000 tokens a minute is 100 a second: a bucket started empty refills in under a second.
    model.configure(rpm=0, tpm=6000, limits_start_empty=True)
    first = complete(model)
    assert first.status_code == 429
    assert 0 < retry_wait(httpx2.Headers(first.headers.multi_items())) < 5  # type: ignore[operator]
    wait_until(lambda: complete(model).status_code == 200, 5, what="the token bucket to refill")


# --- agentq's budget -------------------------------------------------------------------------


def budget_client(
    redis_url: str, double: Double, tpm: int, rpm: int = 0, **transport: Any
) -> tuple[AsyncOpenAI, aioredis.Redis]:
    """An OpenAI client whose requests spend the shared budget, and the Redis it is kept in.
    No retries of its own: anything the transport does not absorb shows as an error."""
    connection = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1)
    budget = ModelBudget(connection, MODEL_BUDGET_KEY, tpm, rpm)
    http = DefaultAsyncHttpxClient(
        transport=BudgetTransport(httpx2.AsyncHTTPTransport(), budget, **transport)
    )
    client = AsyncOpenAI(
        base_url=f"{double.url}/v1", api_key="test-key", max_retries=0, http_client=http
    )
    return client, connection


def send_all(redis_url: str, double: Double, tpm: int, requests: int) -> list[int]:
    """``requests`` chat completions at once from a client of its own (its own event loop);
    the tokens each used."""

    async def run() -> list[int]:
        client, connection = budget_client(redis_url, double, tpm)
        try:
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="demo-model", messages=MESSAGES, max_tokens=40
                    )  # type: ignore[call-overload]
                    for _ in range(requests)
                )
            )
        finally:
            await client.close()
            await connection.aclose()
        return [a.usage.total_tokens for a in answers]

    return asyncio.run(run())


def test_two_clients_sharing_the_budget_stay_under_the_providers_limit(
    model: Double, private_redis_url: str
) -> None:
    tpm = 48_000  # 800 tokens a second; a request is some 60 tokens admitted, 40 used
    model.configure(tpm=tpm, limits_start_empty=True)  # another client just spent the key
    used: list[list[int]] = [[], []]

    def client(index: int) -> None:
        used[index] = send_all(private_redis_url, model, tpm, 15)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    took = time.monotonic() - started
    assert [len(u) for u in used] == [15, 15]
    assert stats(model)["rate_limited"] == 0
    # Paced, not refused: the 30 requests' tokens took about as long as the limit allows.
    total = sum(map(sum, used))
    assert took >= total / (tpm / 60) * 0.8

    # The same load with no budget: the double refuses most of the first wave.
    model.configure(limits_start_empty=True)

    async def unbudgeted() -> None:
        async with httpx2.AsyncClient() as http:
            url = f"{model.url}/v1/chat/completions"
            body = {"model": "demo-model", "messages": MESSAGES, "max_tokens": 40}
            await asyncio.gather(*(http.post(url, json=body) for _ in range(30)))

    asyncio.run(unbudgeted())
    assert stats(model)["rate_limited"] >= 20


def level(redis_url: str, field: str) -> float:
    client = redis.Redis.from_url(redis_url)
    try:
        return float(client.hget(MODEL_BUDGET_KEY, field) or 0)
    finally:
        client.close()


def fill(redis_url: str, tokens: float, requests: float) -> None:
    """Set the budget's levels as of now (Redis's clock)."""
    client = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = client.time()
        now = seconds + micros / 1_000_000
        client.hset(MODEL_BUDGET_KEY, mapping={"at": now, "tok": tokens, "req": requests})
    finally:
        client.close()


def one_request(redis_url: str, double: Double, tpm: int, rpm: int = 0, **extra: Any) -> Any:
    async def run() -> Any:
        client, connection = budget_client(redis_url, double, tpm, rpm)
        try:
            return await client.chat.completions.create(  # type: ignore[call-overload]
                model="demo-model", messages=MESSAGES, **extra
            )
        finally:
            await client.close()
            await connection.aclose()

    return asyncio.run(run())


def test_a_booking_is_corrected_to_the_usage(model: Double, private_redis_url: str) -> None:
    # 60 tokens a minute: one a second, so the levels barely move by themselves in the test.
    fill(private_redis_url, 60, 0)
    answer = one_request(private_redis_url, model, tpm=60, max_tokens=500)
    used = answer.usage.total_tokens
    assert estimate_tokens(b'"max_tokens":500') > 500 > used
    # Booked its estimate (more than 500), then given back all but what it used.
    assert 60 - used - 0.5 <= level(private_redis_url, "tok") <= 60 - used + 3


def test_the_providers_headers_pull_the_budget_down(model: Double, private_redis_url: str) -> None:
    model.configure(rpm=20)
    for _ in range(12):  # another client of the same key spends 12 of its 20 requests
        assert complete(model).status_code == 200
    fill(private_redis_url, 100_000, 1000)
    one_request(private_redis_url, model, tpm=100_000, rpm=1000)
    # The provider said 7 requests are left (and a third of one refills a second): agentq had
    # thought 999.
    assert level(private_redis_url, "req") <= 8
    # And that its limit is 20 a minute, not the 1,000 agentq was told: that is used now.
    client = redis.Redis.from_url(private_redis_url)
    try:
        assert client.hget(MODEL_BUDGET_KEY, "preq") == b"20"
    finally:
        client.close()
    # Never up: with plenty left at the provider, a lower level stays where it is.
    model.configure(rpm=0)
    fill(private_redis_url, 100_000, 3)
    one_request(private_redis_url, model, tpm=100_000, rpm=1000)
    assert level(private_redis_url, "req") <= 3


def test_a_429_is_waited_out_and_sent_again(model: Double, private_redis_url: str) -> None:
    # Two requests a second, and the key just spent: the first answer is a 429 for ~0.5 s.
    model.configure(rpm=120, limits_start_empty=True)
    started = time.monotonic()
    answer = one_request(private_redis_url, model, tpm=10_000_000)
    assert answer.choices[0].message.content
    assert time.monotonic() - started >= 0.4
    assert stats(model)["rate_limited"] >= 1


def test_an_endpoint_that_always_refuses_still_ends(model: Double, private_redis_url: str) -> None:
    model.configure(fault="http_429", retry_after_s=0.01)

    async def run() -> None:
        client, connection = budget_client(private_redis_url, model, 10_000_000, max_resends=3)
        try:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="demo-model", messages=MESSAGES)  # type: ignore[arg-type]
        finally:
            await client.close()
            await connection.aclose()

    asyncio.run(run())
    assert stats(model)["requests"] == 4  # the first and three more


def test_without_redis_requests_go_through(model: Double) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    answer = one_request(unreachable, model, tpm=60)
    assert answer.choices[0].message.content


def test_usage_is_read_from_either_api_and_from_a_stream() -> None:
    chat = b'{"usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}'
    responses = b'{"usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}}'
    stream = (
        b'event: response.created\ndata: {"type": "response.created"}\n\n'
        b'event: response.completed\ndata: {"response": {"usage": '
        b'{"input_tokens": 4, "output_tokens": 2}}}\n\n'
    )
    assert usage_tokens(chat, "application/json") == 15
    assert usage_tokens(responses, "application/json") == 10
    assert usage_tokens(stream, "text/event-stream") == 6
    assert usage_tokens(b"not json", "application/json") is None
    body = b'{"model": "m", "max_output_tokens": 1000, "input": "say \\"max_tokens\\": 9"}'
    assert estimate_tokens(body) == -(-len(body) // 3) + 1000
