"""Producers: the Python API (``producer.Client``; ``submit``, ``get``, ``wait``, ``cancel``;
``submit_batch`` with ``BatchItem``), the checks a submission passes, and batch files.

The CLI (``cli``), the HTTP API (``api``) and beat (``scheduler``) all submit through this client.
"""

from agentq.batches import BatchItem
from producer.client import CancelResult, Client, cancel, get, submit, wait

__all__ = ["BatchItem", "CancelResult", "Client", "cancel", "get", "submit", "wait"]
