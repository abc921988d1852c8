"""The HTTP API and dashboard (``agentq api``)."""

from api.app import create_app, serve

__all__ = ["create_app", "serve"]
