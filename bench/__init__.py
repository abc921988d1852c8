"""The benchmark (``make bench``): agentq's worker against a naive Celery worker and the limit."""
