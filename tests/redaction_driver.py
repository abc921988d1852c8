"""Start an agentq process the way its command does, then log credential-shaped lines in it.

``python -m tests.redaction_driver beat SCHEDULES SHAPES_JSON`` goes through ``agentq beat
--check`` (the CLI's logging) and then hands logging to Celery beat as ``agentq beat`` does;
``... api PORT SHAPES_JSON`` serves ``agentq api`` (uvicorn) in a thread. Each shape is then
logged through the standard library (as httpx, uvicorn and Celery log), and through structlog;
``tests/test_logs.py`` reads what reached stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

import structlog

from agentq.settings import get_settings
from cli.main import app
from doubles.processes import http_ok, wait_until


def main(mode: str, where: str, shapes: list[str]) -> None:
    if mode == "beat":
        app(["beat", "--check", "--schedules", where], standalone_mode=False)
        from scheduler.beat import make_beat_app
        from scheduler.config import load_schedules

        settings = get_settings()
        beat_app = make_beat_app(settings, load_schedules(Path(where)))
        beat_app.Beat(loglevel=settings.log_level, quiet=True).setup_logging()
        loggers = ["httpx", "celery.beat", "redbeat"]
    else:
        serve = threading.Thread(
            target=app, args=(["api", "--port", where],), kwargs={"standalone_mode": False}
        )
        serve.daemon = True
        serve.start()
        wait_until(http_ok(f"http://127.0.0.1:{where}/healthz"), 30, what="the API")
        loggers = ["httpx", "uvicorn.error", "agentq.audit"]
    for shape in shapes:
        for name in loggers:
            logging.getLogger(name).warning("%s", shape)
        structlog.get_logger("agentq").warning("shape", detail=shape)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
