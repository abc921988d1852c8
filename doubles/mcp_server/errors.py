"""How the MCP double fails: the error codes and texts of infrahub-mcp 1.2.0.

A client classifies a failure by its JSON-RPC code and message, so the double must send exactly
what the real server sends (observed against it): the codes below, the ``Internal error: <what>``
wrapping of a tool failure, pydantic's wording of invalid arguments. :class:`ToolFailure` carries
a failure from wherever a tool detects it to the one place that puts it on the wire, as a
JSON-RPC error or, with ``error_style`` ``isError``, an error result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from doubles.inventory import InventoryError

__all__ = [
    "INTERNAL_ERROR_CODE",
    "INVALID_PARAMS_CODE",
    "METHOD_NOT_FOUND_CODE",
    "NOT_FOUND_CODE",
    "RATE_LIMIT_CODE",
    "RATE_LIMIT_TEXT",
    "RESOURCE_NOT_FOUND_CODE",
    "ToolFailure",
    "echoing",
    "invalid_params_text",
]

# JSON-RPC codes and texts of infrahub-mcp 1.2.0 (observed against the real server).
RATE_LIMIT_CODE, RATE_LIMIT_TEXT = -32000, "Global rate limit exceeded"
NOT_FOUND_CODE = -32001
RESOURCE_NOT_FOUND_CODE = -32002
METHOD_NOT_FOUND_CODE = -32601
INVALID_PARAMS_CODE = -32602
INTERNAL_ERROR_CODE = -32603


class ToolFailure(Exception):
    """A tool failed the way the real server reports it.

    ``text`` is what the real server puts after ``Internal error: `` in the JSON-RPC error (and,
    with ``--error-style isError``, the text of the error result). ``code`` is the JSON-RPC code.
    """

    def __init__(self, text: str, code: int = INTERNAL_ERROR_CODE) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    @classmethod
    def from_inventory(cls, error: InventoryError) -> ToolFailure:
        return cls(error.text())

    def message(self) -> str:
        prefix = "Internal error: " if self.code == INTERNAL_ERROR_CODE else ""
        return prefix + self.text


def echoing(failure: ToolFailure, token: str | None) -> ToolFailure:
    """``failure`` with the request's token in its first line (the ``echo_token`` knob), as an
    Infrahub error text quoting the credential it refused would have it."""
    if token is None:
        return failure
    first, newline, rest = failure.text.partition("\n")
    return ToolFailure(f"{first} (token '{token}' rejected){newline}{rest}", failure.code)


def invalid_params_text(tool: str, errors: Sequence[Any]) -> str:
    """A -32602 message in the shape pydantic gives the real server (one entry per problem)."""
    count = len(errors)
    lines = [f"Invalid params: {count} validation error{'s' if count > 1 else ''} for call[{tool}]"]
    for error in errors:
        location = ".".join(str(p) for p in error.path)
        message = str(error.message)
        if error.validator == "required":
            location = message.split("'")[1] if "'" in message else location
            message = "Field required"
        elif error.validator == "additionalProperties":
            message = f"Unexpected keyword argument: {message}"
        lines.append(location or tool)
        lines.append(f"  {message}")
    return "\n".join(lines)
