"""The Celery worker that runs agent jobs (``agentq worker``); see ``worker.app``."""
