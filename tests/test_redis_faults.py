"""Redis failing under real workers: killed at different moments of a batch, paused, failed over.

Each test runs a Redis of its own (append-only file on), real worker processes and the session's
MCP and model doubles. What must hold every time: every job a user was told about (a submit that
returned an id) succeeds, each question is run once (the model double sees one first turn per
question: a run that started twice would show two), all within 60 s of Redis being back, and no
traceback from the broker's transport.

With ``appendfsync always`` (Debian's Redis 7.0: no WAITAOF) an acknowledged write is on disk
before its answer by the server's own doing. With ``everysec`` a restart takes the state back by
up to a second or two, and only WAITAOF (Redis 7.2+, ``waitaof`` tests) keeps what users were
told; the claims, dispatches and message moves of that second are lost and agentq puts them
right (``worker.maintenance.watch_redis``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentq.connections import connect
from agentq.errors import ServiceUnavailable
from agentq.jobs import JobStatus
from doubles.processes import Service, free_port, spawn, start_redis, wait_until
from producer.client import Client
from tests.conftest import TOKEN_A, Double, FreshWorker, Stack, wait_idle

BACK_WITHIN_SECONDS = 60.0
TRANSPORT_TRACEBACKS = ("Traceback", "Error on stopping", "AttributeError")


@dataclass
class OwnRedis:
    """A Redis of the test's own that it kills and starts again on the same port and files."""

    service_dir: Path
    data_dir: Path
    fsync: str
    binary: Path | None = None
    service: Service | None = None
    port: int | None = None

    def start(self) -> None:
        self.service = start_redis(
            self.service_dir,
            appendonly=True,
            data_dir=self.data_dir,
            port=self.port,
            binary=self.binary,
            extra=("--appendfsync", self.fsync),
        )
        self.port = self.service.port

    def kill(self) -> None:
        assert self.service is not None
        self.service.stop(signal.SIGKILL)

    def snapshot(self) -> None:
        """Copy the data files as they are now (the append-only file is a log: a copy is the
        state at this moment)."""
        shutil.copytree(self.data_dir, self.data_dir.with_suffix(".snapshot"))

    def restore_snapshot(self) -> None:
        """Start again from the snapshot: the writes since are lost (Redis must be stopped)."""
        shutil.rmtree(self.data_dir)
        self.data_dir.with_suffix(".snapshot").rename(self.data_dir)
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class Run:
    """One batch's questions and what the user was told about them."""

    label: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # job id -> question

    def questions(self, n: int) -> list[str]:
        return [f"Which devices are in site {self.label}-{i}?" for i in range(n)]


@pytest.fixture
def faults_stack(
    stack: Stack,
    service_dir: Path,
    model_double: Double,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[OwnRedis, Stack]]:
    fsync, binary = request.param if hasattr(request, "param") else ("always", None)
    if binary == "waitaof":
        binary = request.getfixturevalue("waitaof_redis_binary")
    own = OwnRedis(service_dir, tmp_path / "aof", fsync, binary)
    own.start()
    env = {
        **stack.env,
        "AGENTQ_REDIS_URL": own.url,
        "AGENTQ_WORKER_CONCURRENCY": "8",
        "AGENTQ_DURABLE_WRITES": "on",
    }
    model_double.reset(latency_ms=250)
    try:
        yield own, Stack(env=env, redis_url=own.url, logs=stack.logs)
    finally:
        model_double.reset()
        if own.service is not None:
            own.service.stop()


def first_turns(model: Double, run: Run) -> Counter[str]:
    """How many runs of each of ``run``'s questions the model double saw start."""
    return Counter(
        call["question"]
        for call in model.calls()
        if call.get("tool_results") == 0
        and str(call.get("question", "")).startswith(f"Which devices are in site {run.label}-")
    )


def settle(stack: Stack, run: Run, back_at: float) -> None:
    """Every acknowledged job of ``run`` succeeds within BACK_WITHIN_SECONDS of ``back_at``."""
    client = stack.client()

    def done() -> bool:
        jobs = [client.get(job_id, TOKEN_A) for job_id in run.acknowledged]
        return all(job.status.terminal for job in jobs)

    left = BACK_WITHIN_SECONDS - (time.monotonic() - back_at)
    wait_until(done, left, interval=0.2, what=f"every job of {run.label} to end")
    jobs = [client.get(job_id, TOKEN_A) for job_id in run.acknowledged]
    # Nothing left that could still start a second run of one of them (a late duplicate).
    wait_idle(stack, timeout=max(1.0, BACK_WITHIN_SECONDS - (time.monotonic() - back_at)))
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * len(jobs), [
        (j.id, j.status, j.error) for j in jobs if j.status != JobStatus.SUCCEEDED
    ]


def crash(own: OwnRedis, down_seconds: float = 0.3) -> float:
    """SIGKILL Redis, leave it down a moment, start it again; returns when it was back."""
    own.kill()
    time.sleep(down_seconds)  # the outage itself, not a wait for something to happen
    own.start()
    return time.monotonic()


def submit_singles(client: Client, run: Run, n: int, stop: threading.Event) -> None:
    """Submit ``n`` questions one by one until one fails (Redis is gone): the user was told
    about those that returned an id, and only those."""
    for question in run.questions(n):
        if stop.is_set():
            return
        try:
            run.acknowledged[client.submit(question, TOKEN_A)] = question
        except ServiceUnavailable:
            return


def batch(client: Client, run: Run, n: int = 30) -> None:
    questions = run.questions(n)
    batch_id = client.submit_batch(questions, TOKEN_A)
    jobs = client.batches.job_ids(batch_id)
    ids = [job_id for chunk in jobs for job_id in chunk]
    loaded = client.store.load_many(ids)
    run.acknowledged.update({j.id: j.question for j in loaded if j is not None})
    assert len(run.acknowledged) == n


def counts(client: Client, run: Run) -> Counter[str]:
    return Counter(str(client.get(i, TOKEN_A).status) for i in run.acknowledged)


# The moments of a batch at which Redis is killed: each makes a Run and returns when to kill.
Moment = Callable[[Client, Run], Callable[[], None] | None]


def during_submit(client: Client, run: Run) -> Callable[[], None]:
    stop = threading.Event()
    thread = threading.Thread(target=submit_singles, args=(client, run, 30, stop))
    thread.start()
    wait_until(lambda: len(run.acknowledged) >= 10, 30, interval=0.001, what="10 submits")

    def after_crash() -> None:
        stop.set()
        thread.join(timeout=30)

    return after_crash


def right_after_submit(client: Client, run: Run) -> None:
    batch(client, run)  # the producer dispatched the first jobs; the rest wait in their lane


def mid_run(client: Client, run: Run) -> None:
    batch(client, run)
    wait_until(lambda: counts(client, run)["running"] >= 8, 30, interval=0.02, what="8 running")


def as_jobs_end(client: Client, run: Run) -> None:
    batch(client, run)
    wait_until(lambda: counts(client, run)["succeeded"] >= 3, 30, interval=0.02, what="3 ended")


MOMENTS: list[tuple[str, Moment]] = [
    ("submit", during_submit),
    ("dispatch", right_after_submit),
    ("running", mid_run),
    ("ending", as_jobs_end),
]


def crash_matrix(
    own: OwnRedis, durable: Stack, fresh_worker: FreshWorker, model_double: Double
) -> None:
    client = durable.client()
    worker = fresh_worker(durable, worker_processes=2)
    for name, moment in MOMENTS:
        run = Run(label=f"{own.fsync}-{name}")
        after_crash = moment(client, run)
        back_at = crash(own)
        if after_crash is not None:
            after_crash()
        assert run.acknowledged, name
        settle(durable, run, back_at)
        turns = first_turns(model_double, run)
        assert set(turns) >= set(run.acknowledged.values()), name
        twice = {q: n for q, n in turns.items() if n != 1}
        assert not twice, (name, twice)
    assert worker.alive()
    log = worker.log_text()
    assert not [marker for marker in TRANSPORT_TRACEBACKS if marker in log], log[-3000:]


@pytest.mark.parametrize("faults_stack", [("always", None)], indirect=True)
def test_redis_killed_at_each_moment_of_a_batch_with_fsync_always(
    faults_stack: tuple[OwnRedis, Stack], fresh_worker: FreshWorker, model_double: Double
) -> None:
    own, durable = faults_stack
    crash_matrix(own, durable, fresh_worker, model_double)


@pytest.mark.waitaof
@pytest.mark.parametrize("faults_stack", [("everysec", "waitaof")], indirect=True)
def test_redis_killed_at_each_moment_of_a_batch_with_fsync_everysec_and_waitaof(
    faults_stack: tuple[OwnRedis, Stack], fresh_worker: FreshWorker, model_double: Double
) -> None:
    own, durable = faults_stack
    crash_matrix(own, durable, fresh_worker, model_double)


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


def worker_pids(client: Client) -> list[int]:
    """The pids of the worker processes with a heartbeat in ``client``'s Redis."""
    keys = client.redis.keys("agentq:worker:*")
    return [int(json.loads(str(client.redis.get(key)))["pid"]) for key in keys]


def test_redis_that_comes_back_older_runs_no_job_twice(
    faults_stack: tuple[OwnRedis, Stack], fresh_worker: FreshWorker, model_double: Double
) -> None:
    """A power loss with ``everysec``, or a failover to a replica that lagged: Redis comes back
    without its last writes. Here the lost writes are the claims of running jobs (and the pops
    of their messages, which are back in the queue): without the settling window and the
    workers putting back what they run, each of those jobs would run a second time."""
    own, durable = faults_stack
    model_double.configure(latency_ms=1500)  # nothing ends before Redis is killed
    client = durable.client()
    worker = fresh_worker(durable, worker_processes=2)
    pids = worker_pids(client)
    run = Run(label="older")
    for pid in pids:  # nothing is claimed until the snapshot is taken
        os.kill(pid, signal.SIGSTOP)
    try:
        batch(client, run, n=12)
        own.snapshot()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: counts(client, run)["running"] >= 12, 30, interval=0.02, what="12 running")
    own.kill()
    own.restore_snapshot()
    back_at = time.monotonic()
    settle(durable, run, back_at)
    turns = first_turns(model_double, run)
    assert turns == Counter(dict.fromkeys(run.acknowledged.values(), 1)), turns
    assert "put back a running job whose claim redis lost" in worker.log_text()  # it did happen


def test_redis_paused_mid_batch_fails_no_job(
    faults_stack: tuple[OwnRedis, Stack], fresh_worker: FreshWorker, model_double: Double
) -> None:
    """SIGSTOP for 10 s: to the workers, a network partition (connections time out after 5 s;
    nothing is lost in Redis). Jobs wait it out; none fails for it, none runs twice."""
    own, durable = faults_stack
    client = durable.client()
    worker = fresh_worker(durable, worker_processes=2)
    run = Run(label="paused")
    mid_run(client, run)
    assert own.service is not None
    os.kill(own.service.pid, signal.SIGSTOP)
    try:
        time.sleep(10)  # the partition itself, not a wait for something to happen
    finally:
        os.kill(own.service.pid, signal.SIGCONT)
    settle(durable, run, time.monotonic())
    turns = first_turns(model_double, run)
    assert turns == Counter(dict.fromkeys(run.acknowledged.values(), 1)), turns
    assert worker.alive()
    assert "Traceback" not in worker.log_text()


@dataclass
class SentinelSet:
    """A primary, its replica and one sentinel, all Redis 7.2+ with append-only files."""

    primary: Service
    replica: Service
    sentinel: Service

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.sentinel.port}/0"

    def primary_port(self) -> int:
        with socket.create_connection(("127.0.0.1", self.sentinel.port), timeout=1.0) as sock:
            sock.sendall(b"SENTINEL get-master-addr-by-name mymaster\r\n")
            reply = sock.recv(256).decode().split("\r\n")
        return int(reply[4])


@pytest.fixture
def sentinel_set(
    service_dir: Path, tmp_path: Path, waitaof_redis_binary: Path
) -> Iterator[SentinelSet]:
    aof = ("--appendfsync", "everysec")
    primary = start_redis(
        service_dir,
        appendonly=True,
        binary=waitaof_redis_binary,
        extra=(*aof, "--repl-diskless-sync-delay", "0"),
    )
    replica = start_redis(
        service_dir,
        appendonly=True,
        binary=waitaof_redis_binary,
        extra=(*aof, "--replicaof", "127.0.0.1", str(primary.port)),
    )
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
        "sentinel down-after-milliseconds mymaster 1000\n"
        "sentinel failover-timeout mymaster 10000\n"
    )
    watcher = spawn(
        f"sentinel-{port}",
        [str(waitaof_redis_binary), str(conf), "--sentinel"],
        port,
        service_dir,
        ready=lambda: port_open(port),
    )
    found = SentinelSet(primary, replica, watcher)
    wait_until(lambda: found.primary_port() == primary.port, 15, what="the sentinel")
    wait_until(
        lambda: connect(primary.extra["url"]).info("replication")["connected_slaves"] == 1,
        15,
        what="the replica",
    )
    try:
        yield found
    finally:
        for service in (watcher, replica, primary):
            service.stop()


@pytest.mark.waitaof
def test_a_sentinel_failover_mid_batch_loses_no_job(
    stack: Stack, sentinel_set: SentinelSet, fresh_worker: FreshWorker, model_double: Double
) -> None:
    """The primary is killed mid-batch; the sentinel promotes the replica, which may lack the
    last writes. What users were told was confirmed on the replica too (WAITAOF)."""
    env = {
        **stack.env,
        "AGENTQ_REDIS_URL": sentinel_set.url,
        "AGENTQ_REDIS_SENTINEL_MASTER": "mymaster",
        "AGENTQ_WORKER_CONCURRENCY": "8",
        "AGENTQ_DURABLE_WRITES": "on",
    }
    # (read directly from the replica: the heartbeats are there, and it is the primary after)
    durable = Stack(env=env, redis_url=sentinel_set.replica.extra["url"], logs=stack.logs)
    model_double.reset(latency_ms=250)
    client = durable.client()
    assert client.store.durable_plan() == "waitaof"
    worker = fresh_worker(durable, worker_processes=2)
    run = Run(label="failover")
    mid_run(client, run)
    sentinel_set.primary.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: sentinel_set.primary_port() == sentinel_set.replica.port, 30, what="the failover"
    )
    settle(durable, run, killed_at)
    turns = first_turns(model_double, run)
    assert turns == Counter(dict.fromkeys(run.acknowledged.values(), 1)), turns
    assert worker.alive()
    assert "Traceback" not in worker.log_text()
