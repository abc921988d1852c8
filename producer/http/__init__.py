"""The HTTP API and dashboard (``agentq api``)."""

from producer.http.app import create_app, serve

__all__ = ["create_app", "serve"]
