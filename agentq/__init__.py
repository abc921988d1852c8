"""agentq's shared core: settings, the job model and store, token sealing, traces, logging.

Both sides use it: ``producer`` (the Python API and the ``agentq`` CLI) and ``worker`` (the Celery
worker that runs agents against the Infrahub MCP server).
"""
