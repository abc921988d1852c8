"""Celery task events (for Flower) are opt-in and carry the job id only: no token, sealed or not."""

from __future__ import annotations

import json
import threading
from typing import Any

from agentq.celery_app import make_celery
from agentq.jobs import JobStatus
from doubles.processes import wait_until
from tests.conftest import TOKEN_A, Stack


def test_task_events_show_the_job_id_and_nothing_secret(roomy: Stack) -> None:
    app = make_celery(roomy.settings())  # roomy's worker sends events (AGENTQ_TASK_EVENTS)
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
    # The shared worker runs the job at once: hear an event of our own first, so the receiver
    # is known to be subscribed before the job's events are sent.
    with app.events.default_dispatcher() as dispatcher:

        def heard() -> bool:
            dispatcher.send("agentq-test-probe")
            return any(e.get("type") == "agentq-test-probe" for e in events)

        wait_until(heard, 10, interval=0.2, what="the event receiver to listen")
    try:
        client = roomy.client()
        job_id = client.submit("Which sites are there?", TOKEN_A)
        assert client.wait(job_id, TOKEN_A, timeout=60).status == JobStatus.SUCCEEDED
        wait_until(
            lambda: any(
                e.get("type") == "task-succeeded" and e.get("uuid") == job_id for e in events
            ),
            30,
            what="events",
        )
    finally:
        for receiver in receivers:
            receiver.should_stop = True
    # The worker is shared: the events of this test's job are the ones it checks.
    received = [e for e in events if e.get("type") == "task-received" and e.get("uuid") == job_id]
    assert received
    assert received[0]["args"] == repr([job_id]) or received[0]["args"] == repr((job_id,))
    dump = json.dumps(events, default=str)
    assert TOKEN_A not in dump
    assert "gAAAA" not in dump  # a Fernet token (a sealed token) starts so
