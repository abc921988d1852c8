"""Celery task events (for Flower) are opt-in and carry the job id only: no token, sealed or not."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from agentq.celery_app import make_celery
from agentq.jobs import JobStatus
from doubles.processes import wait_until
from tests.conftest import TOKEN_A, Stack, own_stack, start_worker


def test_task_events_show_the_job_id_and_nothing_secret(stack: Stack, service_dir: Path) -> None:
    evented = own_stack(stack, 9, "event-tests", AGENTQ_TASK_EVENTS="true")
    app = make_celery(evented.settings())
    events: list[dict[str, Any]] = []
    listening = threading.Event()
    receivers: list[Any] = []

    def capture() -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": events.append})
            receivers.append(receiver)
            listening.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

    threading.Thread(target=capture, daemon=True).start()
    assert listening.wait(10)
    worker = start_worker(evented, service_dir)
    try:
        client = evented.client()
        job_id = client.submit("Which sites are there?", TOKEN_A)
        assert client.wait(job_id, TOKEN_A, timeout=60).status == JobStatus.SUCCEEDED
        wait_until(
            lambda: any(e.get("type") == "task-succeeded" for e in events), 30, what="events"
        )
    finally:
        worker.stop()
        for receiver in receivers:
            receiver.should_stop = True
    received = [e for e in events if e.get("type") == "task-received"]
    assert received and received[0]["uuid"] == job_id
    assert received[0]["args"] == repr([job_id]) or received[0]["args"] == repr((job_id,))
    dump = json.dumps(events, default=str)
    assert TOKEN_A not in dump
    assert "gAAAA" not in dump  # a Fernet token (a sealed token) starts so
