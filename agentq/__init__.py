"""agentq's shared core: what every role uses, and nothing that only one role needs.

Settings, Redis connections, the job model and store (its scripts in ``agentq/lua``), admission,
quotas and rate limits, batches, reports and scheduled runs, token sealing and proof, traces,
webhooks, errors, logging and metrics. It imports none of the roles (``producer``, ``worker``,
``scheduler``, ``api``) nor the ``cli``: see ARCHITECTURE.md.
"""
