"""How the MCP double fails: the error codes and texts of infrahub-mcp 1.2.0.

A client classifies a failure by its JSON-RPC code and message, so the double must send exactly
what the real server sends (observed against it): the codes below, the ``Internal error: <what>``
wrapping of a tool failure, pydantic's wording of invalid arguments. :class:`ToolFailure` carries
a failure from wherever a tool detects it to the one place that puts it on the wire, as a
JSON-RPC error or, with ``error_style`` ``isError``, an error result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "Problem",
    "ToolFailure",
    "argument_problems",
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


# The real server validates arguments with pydantic (2.14 in its pinned set), in lax mode: its
# -32602 texts are pydantic's, one entry per problem, each with a link to pydantic's docs.
_PYDANTIC_DOCS = "https://errors.pydantic.dev/2.14/v/"
_BOOL_WORDS = frozenset({"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"})
Problem = tuple[str, str, str, Any]  # where, what pydantic says, its error type, the input


def _field_problems(schema: Mapping[str, Any], value: Any, where: str) -> list[Problem]:
    """What pydantic says about ``value`` for a field of ``schema`` (the shapes the tools'
    schemas use: optional, string, integer with bounds, boolean, object, list of strings)."""
    options = schema.get("anyOf")
    if options is not None:
        if value is None:
            return []
        schema = next(o for o in options if o.get("type") != "null")
    kind = schema.get("type")
    if kind == "string":
        least = schema.get("minLength")
        if not isinstance(value, str):
            return [(where, "Input should be a valid string", "string_type", value)]
        if least is not None and len(value) < least:
            plural = "" if least == 1 else "s"
            text = f"String should have at least {least} character{plural}"
            return [(where, text, "string_too_short", value)]
    elif kind == "integer":
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                text = "Input should be a valid integer, unable to parse string as an integer"
                return [(where, text, "int_parsing", value)]
        elif isinstance(value, float):
            if not value.is_integer():
                text = "Input should be a valid integer, got a number with a fractional part"
                return [(where, text, "int_from_float", value)]
        elif not isinstance(value, int):
            return [(where, "Input should be a valid integer", "int_type", value)]
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and number < low:
            text = f"Input should be greater than or equal to {low}"
            return [(where, text, "greater_than_equal", value)]
        if high is not None and number > high:
            return [
                (where, f"Input should be less than or equal to {high}", "less_than_equal", value)
            ]
    elif kind == "boolean":
        if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
            return []
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return []
        if isinstance(value, int | float | str):
            text = "Input should be a valid boolean, unable to interpret input"
            return [(where, text, "bool_parsing", value)]
        return [(where, "Input should be a valid boolean", "bool_type", value)]
    elif kind == "object" and not isinstance(value, dict):
        return [(where, "Input should be a valid dictionary", "dict_type", value)]
    elif kind == "array":
        if not isinstance(value, list):
            return [(where, "Input should be a valid list", "list_type", value)]
        items = schema.get("items", {})
        return [
            p for i, item in enumerate(value) for p in _field_problems(items, item, f"{where}.{i}")
        ]
    return []


def argument_problems(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[Problem]:
    """Every problem pydantic finds with a call's arguments, in its order: the parameters in
    signature order (a missing one quoting all the arguments), then each unexpected keyword."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems: list[Problem] = []
    for name, field in properties.items():
        if name in arguments:
            problems += _field_problems(field, arguments[name], name)
        elif name in schema.get("required", ()):
            problems.append(
                (name, "Missing required argument", "missing_argument", dict(arguments))
            )
    problems += [
        (name, "Unexpected keyword argument", "unexpected_keyword_argument", value)
        for name, value in arguments.items()
        if name not in properties
    ]
    return problems


def _input_repr(value: Any) -> str:
    """pydantic's ``input_value``: the repr, its middle cut out past 50 characters."""
    text = repr(value)
    return text if len(text) <= 50 else f"{text[:25]}...{text[-24:]}"


def invalid_params_text(tool: str, problems: Sequence[Problem]) -> str:
    """A -32602 message as the real server's pydantic writes it (one entry per problem)."""
    count = len(problems)
    lines = [f"Invalid params: {count} validation error{'s' if count > 1 else ''} for call[{tool}]"]
    for where, message, kind, value in problems:
        lines += [
            where,
            f"  {message} [type={kind}, input_value={_input_repr(value)}, "
            f"input_type={type(value).__name__}]",
            f"    For further information visit {_PYDANTIC_DOCS}{kind}",
        ]
    return "\n".join(lines)
