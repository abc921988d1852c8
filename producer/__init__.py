"""Producers: the Python API (``producer.Client``; ``submit``, ``get``, ``wait``, ``cancel``;
``submit_batch`` with ``BatchItem``) and the ``agentq`` CLI."""

from agentq.batches import BatchItem
from producer.client import CancelResult, Client, cancel, get, submit, wait

__all__ = ["BatchItem", "CancelResult", "Client", "cancel", "get", "submit", "wait"]
