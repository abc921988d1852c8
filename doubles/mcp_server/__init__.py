"""A stand-in for the Infrahub MCP server (infrahub-mcp 1.2.0): tests, ``make demo``, benchmarks.

Why a double: the worker must be tested against what the real server does on the wire, including
how it fails, without an Infrahub instance, and fast enough to run on every commit. So this server
is built on the same MCP SDK (v2.3, low-level ``Server`` plus its Streamable HTTP session manager)
and copies the parts of 1.2.0 a client can observe:

- ``tools/list`` answers the real server's tool definitions verbatim
  (``data/infrahub-mcp-1.2.0-tools.json``); prompts and resources have the real names, arguments
  and MIME types, and ``infrahub_agent`` (the worker's instructions) the real text
  (``data/infrahub-mcp-1.2.0-prompts.json``). ``tests/test_contract_infrahub_mcp.py`` checks all
  of this, the read tools' answers (TOON and FastMCP's result wrapping included) and the error
  texts against the real server.
- Both protocol eras, exactly as the SDK serves them for the real server: a client that sends
  ``initialize`` gets a stateful session (``mcp-session-id``, SSE-framed replies unless
  ``--json-response``); a 2026-07-28 client (the MCP SDK 2.3 client, hence the Agents SDK) probes
  ``server/discover`` and then sends self-contained requests with no session, answered as JSON.
- Failures carry the real codes and texts: tool errors are JSON-RPC -32603
  ``Internal error: <what>\\n\\nRemediation: <hint>``, an unknown tool -32001, bad arguments -32602,
  a write tool in read-only mode -32601, the global rate limit -32000, a missing passthrough token
  -32001, and a token Infrahub rejects -32603 ``... Client error '401 Unauthorized' for url ...``
  (in passthrough mode that concerns tool calls and resource reads only; the handshake,
  listings and prompts need no token, as on the real server). Handshake
  clients get them inside HTTP 200 replies; for 2026-07-28 requests the SDK maps -32602 to HTTP
  400 and -32601 to 404, as it does for the real server. ``--error-style isError`` returns tool
  failures as ``isError`` results instead, like 1.1.x.
- Tools answer from a small deterministic inventory (``doubles.inventory``).

On top of that, it can misbehave on purpose (latency, HTTP errors from a "gateway", dropped
connections, hangs, rate limiting), configurable at start and at run time, and it records every
request it receives so a test can compare what a client did with what the server saw:

- ``GET /health`` -> ``{"status": "ok"}``
- ``GET|POST /_double/config`` -> the run-time knobs (POST merges a JSON object into them)
- ``POST /_double/reset`` -> back to the start-up knobs and dataset, recorded calls cleared
  (an optional JSON body of knobs is applied afterwards)
- ``POST /_double/inventory`` -> change the dataset, e.g. between two runs of a nightly report::

      {"changes": [
          {"op": "add", "kind": "DcimDevice", "name": "atl1-leaf2", "like": "atl1-leaf1"},
          {"op": "remove", "kind": "DcimDevice", "name": "dfw1-leaf1"},
          {"op": "rename", "kind": "DcimDevice", "name": "jfk1-edge1", "to": "jfk1-edge9"}]}

  answers ``{"added": ["atl1-leaf2"], "removed": ["dfw1-leaf1"], "renamed": [["jfk1-edge1",
  "jfk1-edge9"]]}``. All or nothing: a bad change (unknown op or kind, no such node, a name
  already taken, a missing field, a body that is not JSON) answers 400 ``{"error": "changes[1]
  (remove DcimDevice 'x'): no DcimDevice named 'x'"}`` and changes nothing. ``add`` copies the
  ``like`` node's attributes and single peers (site, rack, platform, tenant) under the new name;
  ``rename`` keeps the node's id, as Infrahub does; ``remove`` clears links to the node. A name is
  the node's human-friendly id, its parts joined by ``__`` (``atl1-edge1__Ethernet1`` for an
  interface). ``POST /_double/reset`` brings the start-up dataset back. Devices to start from
  (``doubles/data/inventory.yaml``), an edge router, a spine and a leaf at each site:
  ``atl1-edge1``, ``atl1-spine1``, ``atl1-leaf1``; ``dfw1-edge1``, ``dfw1-spine1`` (status
  maintenance), ``dfw1-leaf1``; ``jfk1-edge1``, ``jfk1-spine1``, ``jfk1-leaf1`` (provisioning);
  ``ord1-edge1``, ``ord1-spine1``, ``ord1-leaf1``.
- ``GET /_double/calls`` -> every request, in arrival order; ``GET /_double/stats`` -> counts

Tokens are compared, never stored in a record or written to a log (only the ``echo_token`` knob
sends one back, in the reply to the request that carried it).

Run it with ``python -m doubles.mcp_server --port 8001 --token T`` or build it in-process with
:func:`build_app`.

One concept a module:

- ``config``: what the double presents itself as, and :class:`DoubleConfig`, the knobs;
- ``state``: :class:`DoubleState` (knobs, dataset, branches, rate bucket, records), the
  :class:`CallRecord` of each request and the verdict the HTTP layer hands the MCP layer;
- ``auth``: reading and judging the bearer token, and how a refused token reads;
- ``errors``: the real server's JSON-RPC codes and texts, and ``ToolFailure``;
- ``wire``: how FastMCP renders results and listings;
- ``tools``, ``prompts``, ``resources``: the MCP handlers of each;
- ``server``: the SDK's low-level ``Server`` with those handlers and the rate-limit middleware;
- ``app``: the ASGI app, the ``/mcp`` gate (recording, faults, gateway auth) and the admin
  endpoints;
- ``cli``: the command line (``__main__`` runs it).
"""

from doubles.mcp_server.app import DoubleApp, build_app
from doubles.mcp_server.cli import main
from doubles.mcp_server.config import FAULTS, SERVER_VERSION, DoubleConfig
from doubles.mcp_server.state import CallRecord, DoubleState
from doubles.mcp_server.tools import load_tool_definitions

__all__ = [
    "FAULTS",
    "SERVER_VERSION",
    "CallRecord",
    "DoubleApp",
    "DoubleConfig",
    "DoubleState",
    "build_app",
    "load_tool_definitions",
    "main",
]
