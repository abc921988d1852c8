"""A Sentinel-managed Redis: producers, a worker and beat's settings reach it by a sentinel URL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentq.connections import celery_transport_options, parse_sentinel, redact_url, redbeat_options
from agentq.jobs import JobStatus
from doubles.processes import Service, free_port, redis_server_binary, spawn, start_redis
from tests.conftest import TOKEN_A, FreshWorker, Stack


def test_sentinel_urls_are_parsed_and_redacted() -> None:
    url = "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://10.0.0.2:26380"
    parsed = parse_sentinel(url)
    assert parsed is not None
    assert parsed.hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert parsed.password == "s3cret" and parsed.db == 2
    assert "s3cret" not in redact_url(url) and "10.0.0.2:26380" in redact_url(url)
    assert celery_transport_options(url, "prod") == {"master_name": "prod"}
    assert redbeat_options(url, "prod")["redbeat_redis_options"]["service_name"] == "prod"
    assert parse_sentinel("redis://localhost:6379/0") is None
    with pytest.raises(ValueError, match="sentinel://host:port"):
        parse_sentinel("sentinel://a:1;redis://b:2")


@pytest.fixture
def sentinel(service_dir: Path) -> Iterator[tuple[Service, Service]]:
    master = start_redis(service_dir / "sentinel-master")
    port = free_port()
    folder = service_dir / f"sentinel-{port}"
    folder.mkdir(parents=True)
    conf = folder / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"SENTINEL get-master-addr-by-name mymaster\r\n")
            return str(master.port).encode() in sock.recv(256)

    watcher = spawn(
        f"sentinel-{port}",
        [redis_server_binary(), str(conf), "--sentinel"],
        port,
        folder,
        ready=ready,
    )
    yield master, watcher
    watcher.stop()
    master.stop()


def test_a_job_runs_through_a_sentinel_url(
    stack: Stack, sentinel: tuple[Service, Service], fresh_worker: FreshWorker
) -> None:
    # (fresh_worker after sentinel: the worker stops before its Redis does)
    master, watcher = sentinel
    url = f"sentinel://127.0.0.1:{watcher.port}/0"
    env = {**stack.env, "AGENTQ_REDIS_URL": url, "AGENTQ_REDIS_SENTINEL_MASTER": "mymaster"}
    through_sentinel = Stack(env=env, redis_url=master.extra["url"], logs=stack.logs)
    fresh_worker(through_sentinel)  # ready: its heartbeat is on the master
    client = through_sentinel.client()
    job = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
    assert job.status == JobStatus.SUCCEEDED and job.answer
