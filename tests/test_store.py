"""The job store against a real redis-server."""

from __future__ import annotations

import pytest
import redis

from agentq.connections import connect, redact_url
from agentq.dispatch import Dispatcher
from agentq.errors import JobNotFound, ServiceUnavailable
from agentq.jobs import AttemptSummary, Job, JobError, JobStatus, Usage
from agentq.sealing import TokenSealer, generate_key
from agentq.store import SETTLE_SECONDS, WORKER_PREFIX, JobStore
from agentq.traces import AttemptTrace, Step, Totals
from doubles.processes import free_port

TTL = 3600


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(connect(redis_url), TTL, redis_url)


def new_job(question: str = "how many devices?") -> Job:
    return Job.new(question, owner="f" * 32, metadata={"source": "test"})


def test_create_and_load_round_trip_with_ttl(store: JobStore, redis_client: redis.Redis) -> None:
    job = new_job()
    store.create([job], ["sealed-xyz"])
    loaded = store.load(job.id)
    assert loaded == job
    ttl = redis_client.ttl(JobStore.job_key(job.id))
    assert 0 < ttl <= TTL


def test_transitions_are_guarded(store: JobStore, redis_client: redis.Redis) -> None:
    job = new_job()
    store.create([job], ["sealed-xyz"])
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    running = store.load(job.id)
    assert running is not None
    assert running.status == JobStatus.RUNNING
    assert running.attempts == 1
    assert running.worker == "w1"
    assert running.started_at is not None
    assert job.id in dict(store.running())
    # Another worker may not finish a job it does not own.
    assert not store.finish(job.id, JobStatus.SUCCEEDED, answer="x", owner="w2")
    usage = Usage(requests=2, input_tokens=10, output_tokens=5, total_tokens=15)
    assert store.finish(job.id, JobStatus.SUCCEEDED, answer="42", usage=usage, owner="w1")
    # A late or redelivered message can neither restart nor re-finish the job.
    assert store.claim(job.id, "w2", poison_after=3) == "terminal"
    assert not store.finish(
        job.id, JobStatus.FAILED, error=JobError(code="internal", message="late")
    )
    # Finished jobs leave the indexes and drop their sealed token.
    assert job.id not in dict(store.running())
    assert store.sealed_token(job.id) is None
    done = store.load(job.id)
    assert done is not None
    assert done.status == JobStatus.SUCCEEDED
    assert done.answer == "42"
    assert done.usage == usage
    assert done.error is None
    assert done.attempts == 1
    assert done.finished_at is not None and done.finished_at >= done.created_at


def test_unknown_job(store: JobStore) -> None:
    assert store.load("nope") is None
    assert store.claim("nope", "w1", poison_after=3) == "missing"
    assert not store.finish("nope", JobStatus.FAILED)
    assert store.cancel("nope") is None


def test_duplicate_delivery_of_a_job_running_on_a_live_worker_is_dropped(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = new_job()
    store.create([job], ["sealed"])
    redis_client.set("agentq:worker:w1", "{}", ex=30)
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    assert store.claim(job.id, "w2", poison_after=3) == "busy"
    loaded = store.load(job.id)
    assert loaded is not None and loaded.worker == "w1" and loaded.attempts == 1


def test_a_dead_workers_job_is_taken_over_then_poisoned(store: JobStore) -> None:
    job = new_job()
    store.create([job], ["sealed"])
    assert store.claim(job.id, "dead-1", poison_after=3) == "claimed"
    assert store.claim(job.id, "dead-2", poison_after=3) == "claimed"  # lost run 1
    assert store.claim(job.id, "dead-3", poison_after=3) == "claimed"  # lost run 2
    assert store.claim(job.id, "w4", poison_after=3) == "poisoned"  # lost run 3
    loaded = store.load(job.id)
    assert loaded is not None
    assert loaded.status == JobStatus.FAILED
    assert loaded.error is not None and loaded.error.code == "poisoned"
    assert loaded.lost_runs == 3
    assert job.id not in dict(store.running())


def test_retry_waits_in_the_delayed_set_until_due(store: JobStore) -> None:
    job = new_job()
    store.create([job], ["sealed-retry"])
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    assert store.requeue(job.id, 60.0, owner="other") == "skipped"
    assert store.requeue(job.id, 60.0, owner="w1") == "queued"
    loaded = store.load(job.id)
    assert loaded is not None and loaded.status == JobStatus.QUEUED
    assert loaded.next_attempt_at is not None and loaded.next_attempt_at > job.created_at + 59
    # A stale message cannot run it before it is due, and the due-set does not hand it out.
    assert store.claim(job.id, "w2", poison_after=3) == "early"
    assert job.id not in store.pop_due()
    assert store.requeue(job.id, 0.0) == "skipped"  # not running any more
    store.redis.zadd("agentq:delayed", {job.id: 0})
    assert store.pop_due() == [job.id]
    assert store.pop_due() == []  # handed out once
    assert store.sealed_token(job.id) == "sealed-retry"


def test_cancel(store: JobStore) -> None:
    queued, running = new_job(), new_job()
    for job in (queued, running):
        store.create([job], ["s"])
    store.claim(running.id, "w1", poison_after=3)
    before = store.cancels()
    assert store.cancel(queued.id) == "queued"
    # Each cancel request moves the counter workers watch (Maintenance.stop_cancelled_jobs).
    assert store.cancels() == before + 1
    assert store.cancel(running.id) == "running"
    assert store.cancel(running.id) == "cancelled"  # says what it was; changes nothing
    assert store.cancel_many([queued.id, running.id]) == 0
    assert store.cancels() == before + 4
    assert store.claim(queued.id, "w2", poison_after=3) == "terminal"
    # The running job's worker can no longer record success.
    assert not store.finish(running.id, JobStatus.SUCCEEDED, answer="late", owner="w1")
    for job in (queued, running):
        loaded = store.load(job.id)
        assert loaded is not None and loaded.status == JobStatus.CANCELLED


def test_load_owned_hides_other_owners_jobs(store: JobStore) -> None:
    sealer = TokenSealer(generate_key())
    job = Job.new("q", owner=sealer.fingerprint("token-a"))
    store.create([job], ["sealed-xyz"])
    assert store.load_owned(job.id, "token-a", sealer).id == job.id
    with pytest.raises(JobNotFound) as other:
        store.load_owned(job.id, "token-b", sealer)
    with pytest.raises(JobNotFound) as missing:
        store.load_owned("0" * 32, "token-b", sealer)
    assert str(other.value).replace(job.id, "ID") == str(missing.value).replace("0" * 32, "ID")


def test_trace_attempts_are_appended_in_order(store: JobStore, redis_client: redis.Redis) -> None:
    job = new_job()
    store.create([job], ["sealed-xyz"])
    for attempt in (1, 2):
        steps = [Step(kind="model_call", input_tokens=attempt, output_tokens=1)]
        store.record_attempt(
            job.id,
            AttemptSummary(attempt=attempt, started_at=1.0, finished_at=2.0, outcome="retrying"),
            AttemptTrace(
                attempt=attempt,
                started_at=1.0,
                finished_at=2.0,
                outcome="failed" if attempt == 1 else "succeeded",
                steps=steps,
                totals=Totals.of(steps, 1000),
            ),
        )
    trace = store.load_trace(job.id)
    assert trace is not None
    assert [a.attempt for a in trace.attempts] == [1, 2]
    assert trace.totals.input_tokens == 3
    assert trace.totals.model_calls == 2
    loaded = store.load(job.id)
    assert loaded is not None and [h.attempt for h in loaded.history] == [1, 2]
    assert 0 < redis_client.ttl(JobStore.trace_key(job.id)) <= TTL


def test_unreachable_redis_is_one_clear_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    store = JobStore(connect(url, timeout=1), TTL, url)
    with pytest.raises(ServiceUnavailable) as caught:
        store.load("x")
    message = str(caught.value)
    assert message.startswith("cannot reach Redis at redis://:***@127.0.0.1:")
    assert "hunter2" not in message
    assert "\n" not in message


def test_redact_url_keeps_urls_without_password() -> None:
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("redis://user:pw@h:1/2") == "redis://user:***@h:1/2"


def test_a_queued_job_whose_message_was_sent_is_listed_until_claimed(store: JobStore) -> None:
    job = new_job()
    store.create([job], ["sealed"])
    assert job.id not in store.unclaimed(older_than=-1)  # not dispatched yet
    store.mark_sent(job.id)
    assert job.id in store.unclaimed(older_than=-1)
    assert job.id not in store.unclaimed(older_than=60)
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    assert job.id not in store.unclaimed(older_than=-1)


@pytest.fixture
def private_store(private_redis_url: str) -> JobStore:
    """A store on a Redis of the test's own: a settling window here stops no other test's jobs."""
    return JobStore(connect(private_redis_url), TTL, private_redis_url)


def test_a_new_server_run_id_opens_a_settling_window(private_store: JobStore) -> None:
    store = private_store
    run_id, settling = store.server_epoch()
    assert len(run_id) == 40 and settling == 0  # first sight: nothing went back in time
    job = new_job()
    store.create([job], ["sealed"])
    # As after a restart from the append-only file: the epoch names the server before.
    store.redis.hset("agentq:epoch", "run_id", "0" * 40)
    assert store.claim(job.id, "w2", poison_after=3) == "settling"
    again, settling = store.server_epoch()
    assert again == run_id and 0 < settling <= SETTLE_SECONDS
    # The worker that ran it puts it back; then it is busy for everyone else, window or not.
    store.redis.set("agentq:worker:w1", "{}", ex=30)
    assert store.reassert(job.id, "w1", attempt=1) == "reasserted"
    running = store.load(job.id)
    assert running is not None and running.status == JobStatus.RUNNING
    assert running.worker == "w1" and running.attempts == 1
    assert job.id in dict(store.running())
    assert store.claim(job.id, "w2", poison_after=3) == "busy"
    assert store.reassert(job.id, "w2", attempt=1) == "running"  # not taken from its runner
    assert store.reassert("gone", "w1", attempt=1) == "missing"
    # A running job whose worker is dead is not taken over while the window lasts either.
    store.redis.delete("agentq:worker:w1")
    assert store.claim(job.id, "w2", poison_after=3) == "settling"
    store.redis.delete("agentq:settle")
    assert store.claim(job.id, "w2", poison_after=3) == "claimed"


def test_a_job_that_reads_queued_is_finished_by_the_worker_that_ran_it(store: JobStore) -> None:
    # Its claim was lost (Redis went back in time) while w1 ran it: w1's answer still counts.
    job = new_job()
    store.create([job], ["sealed"])
    assert store.finish(job.id, JobStatus.SUCCEEDED, answer="42", owner="w1")
    done = store.load(job.id)
    assert done is not None and done.status == JobStatus.SUCCEEDED and done.answer == "42"
    assert store.claim(job.id, "w2", poison_after=3) == "terminal"


def test_a_due_retry_is_noted_as_sent_when_taken(store: JobStore) -> None:
    job = new_job()
    store.create([job], ["sealed"])
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    assert store.requeue(job.id, 0.0, owner="w1") == "queued"
    assert job.id in store.pop_due()
    # Taken and not yet sent: if the message never goes out, the lost-message check sees it.
    assert job.id in store.unclaimed(older_than=-1)
    store.requeue_due(job.id)
    assert job.id not in store.unclaimed(older_than=-1)


def test_a_claim_sent_again_by_its_own_worker_says_mine(store: JobStore) -> None:
    # Redis applied the claim and the answer was lost; the worker sends it again (worker.tasks
    # then takes the job unless the process already holds it).
    job = new_job()
    store.create([job], ["sealed-mine"])
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    outcome, loaded, sealed = store.claim_and_load(job.id, "w1", poison_after=3)
    assert outcome == "mine" and loaded is not None and sealed == "sealed-mine"
    assert loaded.status == JobStatus.RUNNING and loaded.attempts == 1  # not claimed twice


class CountingConnection(redis.Connection):
    """Counts the round trips a client makes (each command or pipeline sent is one)."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


def one_attempt(number: int = 1) -> tuple[AttemptSummary, AttemptTrace]:
    steps = [Step(kind="tool_call", tool="get_nodes"), Step(kind="model_call", input_tokens=3)]
    summary = AttemptSummary(attempt=number, started_at=1.0, finished_at=2.0, outcome="succeeded")
    trace = AttemptTrace(
        attempt=number,
        started_at=1.0,
        finished_at=2.0,
        outcome="succeeded",
        steps=steps,
        totals=Totals.of(steps, 1000),
    )
    return summary, trace


@pytest.mark.parametrize("flushed", [False, True])
def test_a_job_ends_in_one_round_trip_with_its_record_and_the_next_dispatch(
    redis_url: str, redis_client: redis.Redis, flushed: bool
) -> None:
    """The attempt's record, the end and whatever else is queued (the next dispatch) go in one
    round trip; after a Redis restart (scripts flushed) they still all apply, in that order."""
    pool = redis.ConnectionPool.from_url(
        redis_url, connection_class=CountingConnection, decode_responses=True
    )
    store = JobStore(redis.Redis(connection_pool=pool), TTL, redis_url)
    job = new_job()
    store.create([job], ["sealed-xyz"])
    assert store.claim(job.id, "w1", poison_after=3) == "claimed"
    store.finish("0" * 32, JobStatus.FAILED)  # the transition script is loaded (no NOSCRIPT)
    if flushed:
        redis_client.script_flush()
    summary, trace = one_attempt()
    CountingConnection.sent = 0
    applied, echoed = store.end_attempt(
        job.id,
        summary,
        trace,
        JobStatus.SUCCEEDED,
        answer="42",
        owner="w1",
        also=lambda pipe: len(pipe.echo("next dispatch").command_stack) - 1,
    )
    assert applied and echoed == "next dispatch"
    # One round trip, also when Redis has lost its scripts (they go as EVAL, with their text).
    assert CountingConnection.sent == 1, CountingConnection.sent
    done = store.load(job.id)
    assert done is not None and done.status == JobStatus.SUCCEEDED and done.answer == "42"
    assert [h.attempt for h in done.history] == [1] and done.tool_calls == 1
    loaded = store.load_trace(job.id)
    assert loaded is not None and loaded.totals.model_calls == 1
    # A worker that no longer owns the job records nothing over its end.
    assert not store.end_attempt(job.id, summary, trace, JobStatus.FAILED, owner="w2")[0]


@pytest.mark.parametrize("flushed", [False, True])
def test_a_lone_job_is_written_queued_and_handed_out_in_one_round_trip(
    private_redis_url: str, flushed: bool
) -> None:
    """``Client.submit``'s write: the job, its queueing and the dispatch of what may start now
    go in one transaction and one round trip, also when Redis has lost its scripts (no
    ``SCRIPT EXISTS`` first, and nothing half-written by a script Redis lacked)."""
    pool = redis.ConnectionPool.from_url(
        private_redis_url, connection_class=CountingConnection, decode_responses=True
    )
    client = redis.Redis(connection_pool=pool)
    store = JobStore(client, TTL, private_redis_url)
    dispatcher = Dispatcher(client, tenant_cap=10, headroom=0, ttl=TTL, default_queue="q")
    client.set(WORKER_PREFIX + "w1", "{}")
    dispatcher.register_worker("w1", 5)
    first = new_job()
    store.create([first], ["s"], lambda pipe: dispatcher.enqueue(pipe, "lane", "t", [first.id]))
    assert dispatcher.take() == [(first.id, "q")]  # the scripts are loaded; the window works
    if flushed:
        client.script_flush()
    job = new_job()
    CountingConnection.sent = 0
    flat = store.create(
        [job],
        ["sealed-xyz"],
        lambda pipe: dispatcher.enqueue(pipe, "lane", "t", [job.id]),
        also=dispatcher.take_after,
    )
    assert CountingConnection.sent == 1
    assert dispatcher.taken(flat) == [(job.id, "q")]
    loaded = store.load(job.id)
    assert loaded is not None and loaded.status == JobStatus.QUEUED
    assert store.sealed_token(job.id) == "sealed-xyz"


def test_workers_alive_are_those_with_a_heartbeat(store: JobStore) -> None:
    live, dead = f"w-live-{free_port()}", f"w-dead-{free_port()}"
    store.redis.set(WORKER_PREFIX + live, "{}", ex=30)
    assert store.workers_alive([live, dead]) == {live}
    assert store.workers_alive([]) == set()
