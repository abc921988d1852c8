"""Producers: the Python API (``producer.Client``, ``submit``/``get``/``wait``) and the CLI."""

from producer.client import Client, get, submit, wait

__all__ = ["Client", "get", "submit", "wait"]
