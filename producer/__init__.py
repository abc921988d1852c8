"""Producers: the Python API (``producer.Client``; ``submit``, ``get``, ``wait``, ``cancel``)
and the ``agentq`` CLI."""

from producer.client import CancelResult, Client, cancel, get, submit, wait

__all__ = ["CancelResult", "Client", "cancel", "get", "submit", "wait"]
