"""Local stand-ins for the services agentq talks to, used by the tests, the demo and the benchmark.

``mcp_server``: an Infrahub-shaped MCP server; ``model_server``: an OpenAI-compatible model
(the "offline demo model"); ``processes``: starting and stopping them, and Redis, on free ports.
"""
