"""One long-lived asyncio event loop per worker process, fed by Celery's thread pool.

Agent jobs spend their time waiting on the model and the MCP server, so one process should keep
many of them in flight. Celery has no asyncio pool; its threads pool hands each task to a thread,
and the thread passes the job's coroutine to this loop and waits for its result. All jobs of the
process then share one loop, and so the clients that belong to it (HTTP pools, SSL context),
instead of paying for a new loop and new clients per task.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="agentq-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block the calling thread until it is done."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


_lock = threading.Lock()
_current: tuple[int, LoopThread] | None = None


def get_loop_thread() -> LoopThread:
    """This process's loop, made on first use (and again in a forked child, which has none)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), LoopThread())
        return _current[1]
