"""The MCP double's command line: ``python -m doubles.mcp_server --port 8001 --token T``.

The flags set the start-up knobs, the ones ``POST /_double/reset`` returns to. The accepted
tokens are those of ``--token`` and of ``DOUBLE_MCP_TOKENS`` (comma-separated).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from doubles.asgi import serve
from doubles.mcp_server.app import build_app
from doubles.mcp_server.config import AUTH_MODES, ERROR_STYLES, DoubleConfig

__all__ = ["config_from_args", "main"]

logger = logging.getLogger("doubles.mcp_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m doubles.mcp_server",
        description="An Infrahub MCP server double (infrahub-mcp 1.2.0) for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="an accepted Infrahub API token (repeatable; also DOUBLE_MCP_TOKENS=a,b)",
    )
    parser.add_argument("--auth-mode", choices=AUTH_MODES, default="gateway")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse the write tools")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--tool-latency-ms", type=float, default=0.0)
    parser.add_argument("--json-response", action="store_true", help="JSON replies instead of SSE")
    parser.add_argument("--error-style", choices=ERROR_STYLES, default="jsonrpc")
    parser.add_argument("--rate-limit-rps", type=float, default=0.0)
    parser.add_argument("--rate-limit-burst", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> DoubleConfig:
    from_env = [t.strip() for t in environ.get("DOUBLE_MCP_TOKENS", "").split(",") if t.strip()]
    tokens = tuple(dict.fromkeys([*args.token, *from_env]))
    base = DoubleConfig(tokens=tokens, json_response=args.json_response)
    return base.with_knobs(
        {
            "auth_mode": args.auth_mode,
            "read_only": args.read_only,
            "latency_ms": args.latency_ms,
            "tool_latency_ms": args.tool_latency_ms,
            "error_style": args.error_style,
            "rate_limit_rps": args.rate_limit_rps,
            "rate_limit_burst": args.rate_limit_burst,
            "seed": args.seed,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the double under uvicorn until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args, os.environ)
    except ValueError as error:
        print(f"mcp double: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if config.auth_mode == "gateway" and not config.tokens:
        logger.warning("gateway auth with no --token: every /mcp request will get HTTP 401")
    serve(build_app(config), args.host, args.port)
    return 0
