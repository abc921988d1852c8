"""Local stand-ins for the services agentq talks to, used by the tests, the demo and the benchmark.

``mcp_server``: an Infrahub-shaped MCP server (a package, one concept a module); ``inventory``:
the Infrahub it answers from, a dataset kept as data (``data/inventory.yaml``) and the queries
over it; ``toon``: the text format the real server answers in; ``model_server`` and
``model_policy``: an OpenAI-compatible model (the "offline demo model"); ``asgi``: serving and
fault plumbing both servers share; ``processes``: starting and stopping them, and Redis, on free
ports; ``demo``: ``make demo``; ``infrahub_backend``: a fake Infrahub API over the inventory, for
the contract tests that run the real infrahub-mcp in front of it.
"""
