"""What an audit costs: dollars per call, attempt, job, batch and report; budgets; tiers;
fallback models; prefix caching; identical questions asked once.

Real workers run against a model double of this module's own (its knobs change per test), with
a price table given here (``AGENTQ_PRICES_FILE``), on both model APIs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from agentq.batches import Batch, batch_key
from agentq.errors import ConfigError
from agentq.jobs import Job, JobStatus, Usage
from agentq.prices import Price, PriceTable, load_prices, usd
from agentq.reports import render
from agentq.spend import Recorded, Spend, tenant_day_key
from agentq.text import md_text
from agentq.traces import Step, Totals
from producer.client import Client
from scheduler.config import ReportSchedule
from tests.conftest import (
    PRICED,
    TOKEN_A,
    UNPRICED,
    Double,
    Stack,
    run_cli,
)
from tests.conftest import (
    PRICES_TABLE as TABLE,
)

QUESTIONS = ["Which sites are there?", "Which platforms are there?", "Which VLANs exist?"]


BOTH_APIS = pytest.mark.parametrize("stack_name", ["cost_chat", "cost_responses"])


@pytest.fixture
def model(cost_model: Double) -> Iterator[Double]:
    """The module's model double with its start-up knobs (and an empty prefix cache)."""
    cost_model.reset()
    yield cost_model
    cost_model.reset()


def expected_cost(step: Step) -> float:
    tier = step.service_tier or "default"
    figures = TABLE["models"][PRICED][tier]  # type: ignore[index]
    price = Price(figures["input"], figures["cached_input"], figures["output"])
    return price.cost(step.input_tokens or 0, step.cached_tokens or 0, step.output_tokens or 0)


def batch_jobs(client: Client, batch_id: str) -> list[Job]:
    ids = [i for chunk in client.batches.job_ids(batch_id) for i in chunk]
    return [job for job in client.store.load_many(ids) if job is not None]


def model_calls(client: Client, job_id: str) -> list[Step]:
    trace = client.trace(job_id, TOKEN_A)
    return [s for a in trace.attempts for s in a.steps if s.kind == "model_call"]


@BOTH_APIS
def test_costs_add_up_from_each_call_to_the_report(
    stack_name: str, request: pytest.FixtureRequest, model: Double
) -> None:
    stack: Stack = request.getfixturevalue(stack_name)
    client = stack.client()
    first = client.wait(client.submit("Which devices are there?", TOKEN_A), TOKEN_A, timeout=60)
    assert first.status == JobStatus.SUCCEEDED, first.error
    batch_id = client.submit_batch(QUESTIONS, TOKEN_A, name="priced")
    batch = client.wait_batch(batch_id, TOKEN_A, timeout=60, poll_interval=0.1)
    jobs = batch_jobs(client, batch_id)
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 3

    for job in [first, *jobs]:
        calls = model_calls(client, job.id)
        assert calls and all(s.model == PRICED for s in calls)
        for step in calls:  # each call at the table's price for the tier that served it
            assert step.service_tier == "default"
            assert step.cost_usd == pytest.approx(expected_cost(step), rel=1e-9)
        trace = client.trace(job.id, TOKEN_A)
        for attempt in trace.attempts:  # attempt = its calls
            assert attempt.totals.cost_usd == pytest.approx(
                sum(expected_cost(s) for s in attempt.steps if s.kind == "model_call")
            )
        assert job.usage is not None and job.usage.requests == len(calls)  # job = its attempts
        assert job.cost_usd == pytest.approx(trace.totals.cost_usd)
        assert job.usage.cached_tokens == sum(s.cached_tokens or 0 for s in calls)

    # The prefix (instructions, then the tools) is the same for every job: from the second job
    # on, the provider serves it from its cache, at the cached price.
    assert all(s.cached_tokens == 0 for s in model_calls(client, first.id)[:1])
    for job in jobs:
        cached = [s for s in model_calls(client, job.id) if s.cached_tokens]
        assert cached, f"job {job.id} had no cached input"
        for step in cached:
            full = Price(2.0, 2.0, 8.0).cost(step.input_tokens or 0, 0, step.output_tokens or 0)
            assert step.cost_usd is not None and step.cost_usd < full
    keys = {c["prompt_cache_key"] for c in model.calls()}
    assert len(keys) == 1 and str(keys.pop()).startswith("agentq-")

    # batch = its jobs = the report's total; shown by the CLI, the API and the report.
    total = sum(j.cost_usd or 0 for j in jobs)
    report = client.batch_report(batch_id, TOKEN_A)
    assert report.totals.cost_usd == pytest.approx(total)
    assert [r.cost_usd for r in report.rows] == pytest.approx([j.cost_usd for j in jobs])
    assert batch.cost_usd == pytest.approx(total)
    assert f"Cost: **{usd(report.totals.cost_usd)}**" in render(report, "md")
    csv_header = render(report, "csv").splitlines()[0].split(",")
    assert {"cost_usd", "service_tier", "model", "cached_tokens"} <= set(csv_header)
    shown = run_cli(stack.env, "status", first.id, token=TOKEN_A)
    assert usd(first.cost_usd) in shown.stdout and PRICED in shown.stdout
    as_json = run_cli(stack.env, "result", first.id, "--json", token=TOKEN_A).json()
    assert as_json["cost_usd"] == pytest.approx(first.cost_usd)
    status = run_cli(stack.env, "batch", "status", batch_id, token=TOKEN_A).stdout
    assert "cost so far: " + usd(total) in status

    metrics = httpx.get(
        f"http://127.0.0.1:{stack.env['AGENTQ_WORKER_METRICS_PORT']}/metrics", timeout=5
    ).text
    line = f'agentq_cost_usd_total{{model="{PRICED}",tier="default"}}'
    counted = [float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(line)]
    assert counted and counted[0] >= total + (first.cost_usd or 0) - 1e-9


def test_an_unknown_model_or_tier_is_cost_unknown_never_a_guess(tmp_path: Path) -> None:
    table = load_prices(None)  # the shipped one: dated, and it prices the common models
    assert table.as_of and table.knows("gpt-4.1-mini") and table.knows("gpt-4.1-mini-2025-04-14")
    assert table.cost("no-such-model", "default", 1000, 0, 100) is None
    ours = PriceTable.parse(TABLE, "test")
    assert ours.cost(PRICED, "priority", 1000, 0, 100) is None  # a tier it does not list
    assert ours.cost(PRICED, "auto", 1_000_000, 0, 0) == pytest.approx(2.0)  # auto: default
    steps = [
        Step(kind="model_call", input_tokens=10, output_tokens=5, cost_usd=0.01),
        Step(kind="model_call", input_tokens=10, output_tokens=5, cost_usd=None),
    ]
    usage = Usage.of(Totals.of(steps, 1.0))
    assert usage.cost_usd is None and usage.input_tokens == 20  # tokens still counted
    assert Usage.total([usage, Usage(cost_usd=1.0)]) is not None
    assert Usage.total([usage, Usage(cost_usd=1.0)]).cost_usd is None  # type: ignore[union-attr]
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"models": {"m": {"default": {"input": -1, "output": 1}}}}))
    with pytest.raises(ConfigError, match="not a price table"):
        load_prices(str(bad))


def test_a_fallback_model_answers_when_the_first_keeps_failing(
    cost_chat: Stack, model: Double, tmp_path: Path
) -> None:
    model.configure(failing_models=[PRICED])
    client = cost_chat.client()
    job = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.model == UNPRICED and job.attempts == 1
    calls = model_calls(client, job.id)
    assert calls and all(s.model == UNPRICED for s in calls)
    trace = client.trace(job.id, TOKEN_A)
    notes = [s for s in trace.attempts[0].steps if s.kind == "http_error" and s.name == PRICED]
    assert notes and "failed over to " + UNPRICED in (notes[0].error or "")
    asked = [c["model"] for c in model.calls()]
    assert asked[0] == PRICED and asked.count(UNPRICED) == len(calls)
    # The fallback has no price: its tokens are shown, and its cost is unknown, not made up.
    assert job.usage is not None and job.usage.input_tokens > 0 and job.cost_usd is None
    shown = run_cli(cost_chat.env, "status", job.id, token=TOKEN_A).stdout
    assert "cost unknown" in shown and UNPRICED in shown
    # A budget needs every model priced: refused at submit, in one line.
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n")
    refused = run_cli(
        cost_chat.env, "batch", "submit", str(questions), "--max-cost-usd", "1", token=TOKEN_A
    )
    assert refused.code == 2 and UNPRICED in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_flex_without_capacity_falls_back_to_default(cost_responses: Stack, model: Double) -> None:
    client = cost_responses.client()
    flex = client.submit_batch(QUESTIONS[:2], TOKEN_A, service_tier="flex")
    client.wait_batch(flex, TOKEN_A, timeout=60, poll_interval=0.1)
    report = client.batch_report(flex, TOKEN_A)
    assert [r.service_tier for r in report.rows] == ["flex", "flex"]
    for job in batch_jobs(client, flex):  # billed at the flex price
        assert all(
            s.cost_usd == pytest.approx(expected_cost(s)) for s in model_calls(client, job.id)
        )

    model.reset(flex_unavailable=True)
    batch_id = client.submit_batch(QUESTIONS[:2], TOKEN_A, service_tier="flex")
    client.wait_batch(batch_id, TOKEN_A, timeout=60, poll_interval=0.1)
    report = client.batch_report(batch_id, TOKEN_A)
    assert [r.status for r in report.rows] == ["succeeded", "succeeded"]
    assert [r.service_tier for r in report.rows] == ["default", "default"]
    calls = model.calls()
    refused = [c for c in calls if c.get("fault") == "flex_unavailable"]
    served = [c for c in calls if c["status"] == 200]
    # Each model call: AGENTQ_FLEX_TRIES (2) flex tries refused, then one at the default tier.
    assert len(refused) == 2 * len(served) and {c["service_tier"] for c in served} == {"default"}
    assert f"| {md_text(PRICED + ' (default)')} |" in render(report, "md")


def test_a_budget_stops_a_batch_once_spent(cost_responses: Stack, model: Double) -> None:
    client = cost_responses.client()
    probe = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
    one_job = probe.cost_usd
    assert one_job
    budget = 4.5 * one_job
    questions = [f"Which interfaces of device {n} are up?" for n in range(20)]
    batch_id = client.submit_batch(questions, TOKEN_A, max_cost_usd=budget, max_inflight=1)
    batch = client.wait_batch(batch_id, TOKEN_A, timeout=90, poll_interval=0.1)
    jobs = batch_jobs(client, batch_id)
    ran = [j for j in jobs if j.status == JobStatus.SUCCEEDED]
    stopped = [j for j in jobs if j.error is not None and j.error.code == "budget_exceeded"]
    assert len(ran) + len(stopped) == 20 and 4 <= len(ran) <= 7, [j.status for j in jobs]
    assert all(j.usage is None for j in stopped)  # nothing spent on them
    report = client.batch_report(batch_id, TOKEN_A)
    spent = report.totals.cost_usd
    most = max(j.cost_usd or 0 for j in ran)
    assert spent is not None and budget <= spent < budget + most
    assert report.totals.budget_exceeded == len(stopped)
    assert batch.max_cost_usd == pytest.approx(budget)
    md = render(report, "md")
    assert f"of a budget of {usd(budget)}" in md and f"{len(stopped)} questions were not run" in md
    runs = {c["question"] for c in model.calls()}
    assert runs == {"Which sites are there?", *(j.question for j in ran)}


def test_identical_questions_are_asked_once(cost_chat: Stack, model: Double) -> None:
    client = cost_chat.client()
    same = "Which devices are in atl1?"
    batch_id = client.submit_batch([same, f"  {same} ", "Which sites are there?", same], TOKEN_A)
    batch = client.wait_batch(batch_id, TOKEN_A, timeout=60, poll_interval=0.1)
    assert batch.total == 2 and batch.questions == 4 and batch.shared == 2
    runs = [c for c in model.calls() if c["question"] == same and c["tool_results"] == 0]
    assert len(runs) == 1
    report = client.batch_report(batch_id, TOKEN_A)
    rows = report.rows
    assert len(rows) == 4 and report.total == 4
    assert rows[0].answer == rows[1].answer == rows[3].answer and rows[0].answer
    assert [r.shared_with for r in rows] == [None, 1, None, 1]
    assert report.totals.cost_usd == pytest.approx(rows[0].cost_usd + rows[2].cost_usd)  # type: ignore[operator]
    assert "(the answer of #1: asked once)" in render(report, "md")

    model.reset()
    apart = client.submit_batch([same, same], TOKEN_A, dedupe=False)
    client.wait_batch(apart, TOKEN_A, timeout=60, poll_interval=0.1)
    runs = [c for c in model.calls() if c["question"] == same and c["tool_results"] == 0]
    assert len(runs) == 2


def test_a_tenant_daily_cap_and_a_batch_budget_are_checked_before_a_job_runs(
    redis_client: redis.Redis,
) -> None:
    owner = "cap-" + uuid.uuid4().hex
    spend = Spend(redis_client, tenant_daily_max=0.10)
    single = Job.new("Which sites?", owner=owner)
    assert spend.exceeded(single) is None
    assert spend.record(single, 0.06) == Recorded()  # not a batch's
    assert spend.exceeded(single) is None
    spend.record(single, None)  # an unpriced call adds nothing
    spend.record(single, 0.05)
    reason = spend.exceeded(single)
    assert reason is not None and "AGENTQ_TENANT_DAILY_MAX_COST_USD" in reason
    other = Job.new("Which sites?", owner=owner + "-other")
    assert spend.exceeded(other) is None  # per tenant
    assert Spend(redis_client, tenant_daily_max=0).exceeded(single) is None  # 0: no cap

    batch_id = Batch.new_id()
    redis_client.hset(batch_key(batch_id), mapping={"max_cost_usd": "0.02"})
    in_batch = Job.new("Which VLANs?", owner=owner + "-b", batch_id=batch_id, budgeted=True)
    assert not spend.record(in_batch, 0.01).crossed
    assert spend.exceeded(in_batch) is None
    crossed = spend.record(in_batch, 0.015)
    assert crossed.crossed and crossed.batch_spent == pytest.approx(0.025)
    assert not spend.record(in_batch, 0.01).crossed  # once: the first to see it spent
    assert "budget of $0.0200 is spent" in (spend.exceeded(in_batch) or "")
    unbudgeted = Job.new("Which VLANs?", owner=owner + "-b", batch_id=batch_id)
    assert Spend(redis_client, tenant_daily_max=0).exceeded(unbudgeted) is None  # not read
    redis_client.delete(batch_key(batch_id), tenant_day_key(owner), tenant_day_key(owner + "-b"))


def test_a_scheduled_report_takes_a_budget_and_a_tier() -> None:
    base = {"name": "nightly", "interval_seconds": 60, "questions": ["q?"], "token_env": "X"}
    report = ReportSchedule.model_validate({**base, "max_cost_usd": 2.5, "service_tier": "flex"})
    assert report.max_cost_usd == 2.5 and report.service_tier == "flex"
    for bad in ({"max_cost_usd": 0}, {"service_tier": "cheap"}):
        with pytest.raises(ValueError):
            ReportSchedule.model_validate({**base, **bad})
