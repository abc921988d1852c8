"""``agentq worker --processes N``: several worker processes under one supervisor, for real."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import redis

from doubles.processes import wait_until
from tests.conftest import TOKEN_A, FreshWorker, Stack, own_stack


def group_workers(client: redis.Redis, supervisor_pid: int) -> dict[str, int]:
    """Heartbeat keys of the supervisor's children: hostname -> pid."""
    found = {}
    for key in client.keys(f"agentq:worker:agentq-{supervisor_pid}-*@*"):
        raw = client.get(key)
        if raw:
            found[key.removeprefix("agentq:worker:")] = int(json.loads(raw)["pid"])
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_processes_share_the_work_and_a_dead_one_is_replaced(
    stack: Stack, fresh_worker: FreshWorker
) -> None:
    group = own_stack(stack, 17, "supervisor-tests", AGENTQ_WORKER_CONCURRENCY="4")
    client = group.client()
    redis_client = redis.Redis.from_url(group.redis_url, decode_responses=True)
    supervisor = fresh_worker(group, worker_processes=2)
    children = group_workers(redis_client, supervisor.pid)
    assert len(children) == 2 and len(set(children.values())) == 2

    ids = [client.submit(f"Which devices are in site {i}?", TOKEN_A) for i in range(16)]
    jobs = [client.wait(i, TOKEN_A, timeout=60, poll_interval=0.1) for i in ids]
    assert {j.status for j in jobs} == {"succeeded"}
    ran_on = {r.worker for r in client.store.load_many(ids) if r is not None}
    assert ran_on == set(children), ran_on  # both processes took jobs

    victim_name, victim = sorted(children.items())[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(set(group_workers(redis_client, supervisor.pid).values()) - {victim}) == 2,
        30,
        what="a replacement worker process",
    )
    job = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == "succeeded"

    pids = set(group_workers(redis_client, supervisor.pid).values()) - {victim}
    assert supervisor.stop(signal.SIGTERM, timeout=60) == 0
    assert not any(alive(pid) for pid in pids)
    assert group_workers(redis_client, supervisor.pid).keys() <= {victim_name}


def test_children_stop_by_themselves_when_the_supervisor_is_killed(
    stack: Stack, fresh_worker: FreshWorker
) -> None:
    group = own_stack(
        stack, 18, "orphan-tests", AGENTQ_WORKER_CONCURRENCY="2", AGENTQ_HEARTBEAT_TTL_SECONDS="3"
    )
    redis_client = redis.Redis.from_url(group.redis_url, decode_responses=True)
    supervisor = fresh_worker(group, worker_processes=2)
    pids = list(group_workers(redis_client, supervisor.pid).values())
    try:
        supervisor.stop(signal.SIGKILL)
        wait_until(lambda: not any(alive(p) for p in pids), 30, what="orphaned workers to stop")
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
