"""The plugin that builds the real infrahub-mcp's virtualenv (``tests/infrahub_mcp_server.py``):
when a failed build skips the contract tests and when it fails them, and where they run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infrahub_mcp_server import MARKER, ServerUnavailable, build_for, pip_failure

LOG = Path("/cache/agentq/infrahub-mcp-1.2.0-py3.13/build-0123456789abcdef.log")


def test_an_unreachable_index_skips_with_pips_words() -> None:
    output = (
        "Collecting anyio==4.16.0 (from -r infrahub-mcp-requirements.txt (line 10))\n"
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None))"
        " after connection broken by 'NewConnectionError('<HTTPConnection object at 0x7f>: "
        "Failed to establish a new connection: [Errno 111] Connection refused')': /simple/anyio/\n"
        "ERROR: Could not find a version that satisfies the requirement anyio==4.16.0 "
        "(from versions: none)\n"
        "ERROR: No matching distribution found for anyio==4.16.0\n"
    )
    error = pip_failure(output, 1, LOG)
    assert isinstance(error, ServerUnavailable)
    assert "the package index is unreachable" in str(error)
    assert "Connection refused" in str(error)


def test_a_pin_that_does_not_exist_fails_naming_the_log() -> None:
    output = (
        "ERROR: Could not find a version that satisfies the requirement infrahub-mcp==0.0.999 "
        "(from versions: 1.1.7, 1.2.0)\n"
        "ERROR: No matching distribution found for infrahub-mcp==0.0.999\n"
    )
    error = pip_failure(output, 1, LOG)
    assert type(error) is RuntimeError
    assert str(LOG) in str(error) and "No matching distribution found" in str(error)


def test_contract_tests_run_after_the_others_and_before_the_last_ones(
    request: pytest.FixtureRequest,
) -> None:
    """In this very session: the others, then the ``contract`` tests, then the ``last`` ones;
    and the build was started exactly when some ``contract`` test was selected."""
    items = request.session.items
    group = [
        2 if item.get_closest_marker("last") else 1 if item.get_closest_marker(MARKER) else 0
        for item in items
    ]
    assert group == sorted(group)
    assert build_for(request.config).started == (1 in group)
