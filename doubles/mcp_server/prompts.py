"""The prompts of infrahub-mcp 1.2.0: their listing, and the texts ``prompts/get`` renders.

``prompts/list`` matches the real server's: names, descriptions, and the argument descriptions
FastMCP generates, kept verbatim, since a client may show or compare them. ``infrahub_agent``,
the prompt agentq's worker runs its agent on, renders the real server's text verbatim; the other
three render the double's own texts (how to answer a question, explore the schema or make a
change with this server's tools), not the real server's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from doubles.mcp_server.errors import INVALID_PARAMS_CODE, NOT_FOUND_CODE
from doubles.mcp_server.wire import FASTMCP_META, json_text

__all__ = [
    "PROMPTS",
    "agent_prompt",
    "change_prompt",
    "explore_prompt",
    "get_prompt",
    "list_prompts",
    "question_prompt",
]


def _arg_description(text: str, schema: Mapping[str, Any]) -> str:
    """The argument description FastMCP generates for a prompt argument (kept verbatim)."""
    return (
        f"{text}\n\nProvide a value matching the following JSON schema: {json_text(schema)}. "
        "Encode non-string values as JSON."
    )


def _prompt_argument(name: str, text: str, required: bool) -> dict[str, Any]:
    if required:
        schema: dict[str, Any] = {"description": text, "type": "string"}
    else:
        schema = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "default": None,
            "description": text,
        }
    return {"name": name, "description": _arg_description(text, schema), "required": required}


PROMPTS: tuple[dict[str, Any], ...] = (
    {
        "name": "infrahub_agent",
        "description": "System prompt for the Infrahub infrastructure agent.",
        "arguments": [],
    },
    {
        "name": "answer_infra_question",
        "description": "Read-only pipeline for answering infrastructure questions using "
        "Infrahub data.",
        "arguments": [
            _prompt_argument("question", "The infrastructure question to answer.", True),
            _prompt_argument(
                "kind_hint",
                "Known or guessed schema kind. Skips the discovery step if provided.",
                False,
            ),
            _prompt_argument(
                "fields", "Comma-separated attribute names to include in the result.", False
            ),
            _prompt_argument("branch", "Branch to query. Defaults to the default branch.", False),
        ],
    },
    {
        "name": "make_infra_change",
        "description": "Write workflow for making infrastructure changes through Infrahub.",
        "arguments": [
            _prompt_argument("description", "What infrastructure change to make.", True),
            _prompt_argument("kind", "Target schema kind for the change.", False),
            _prompt_argument(
                "branch",
                "Existing branch to target. A session branch is auto-created if omitted.",
                False,
            ),
        ],
    },
    {
        "name": "explore_schema",
        "description": "Schema discovery prompt for exploring Infrahub's data model.",
        "arguments": [
            _prompt_argument(
                "kind", "Specific kind to explore. Omit to browse the full catalog.", False
            )
        ],
    },
)


def list_prompts() -> types.ListPromptsResult:
    return types.ListPromptsResult(
        prompts=[types.Prompt.model_validate({**p, "_meta": FASTMCP_META}) for p in PROMPTS]
    )


def get_prompt(params: types.GetPromptRequestParams, read_only: bool) -> types.GetPromptResult:
    """``prompts/get``: the named prompt rendered, or the real server's error for a bad call."""
    spec = next((p for p in PROMPTS if p["name"] == params.name), None)
    if spec is None:
        raise MCPError(NOT_FOUND_CODE, f"Not found: Unknown prompt: '{params.name}'")
    args = dict(params.arguments or {})
    missing = {a["name"] for a in spec["arguments"] if a["required"] and a["name"] not in args}
    if missing:
        raise MCPError(
            INVALID_PARAMS_CODE, f"Invalid params: Missing required arguments: {missing}"
        )
    if params.name == "infrahub_agent":
        text = agent_prompt(read_only)
    elif params.name == "answer_infra_question":
        text = question_prompt(
            args["question"], args.get("kind_hint"), args.get("fields"), args.get("branch")
        )
    elif params.name == "make_infra_change":
        text = change_prompt(args["description"], args.get("kind"), args.get("branch"))
    else:
        text = explore_prompt(args.get("kind"))
    return types.GetPromptResult(
        description=spec["description"],
        messages=[
            types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
        ],
    )


def agent_prompt(read_only: bool) -> str:
    """The ``infrahub_agent`` prompt, the real 1.2.0 server's text verbatim, read-write or
    read-only (``data/infrahub-mcp-1.2.0-prompts.json``, captured from it): it depends on nothing
    but the read-only mode, and agentq's worker runs its agent on it, so the double must not
    differ (``tests/test_contract_infrahub_mcp.py`` compares the two)."""
    text = (
        resources.files("doubles")
        .joinpath("data", "infrahub-mcp-1.2.0-prompts.json")
        .read_text(encoding="utf-8")
    )
    prompt: str = json.loads(text)["infrahub_agent"]["read-only" if read_only else "read-write"]
    return prompt


def question_prompt(
    question: str, kind_hint: str | None, fields_wanted: str | None, branch: str | None
) -> str:
    """The ``answer_infra_question`` prompt: a step-by-step read workflow for one question."""
    where = f" on branch `{branch}`" if branch else ""
    branch_arg = f', branch="{branch}"' if branch else ""
    kind = kind_hint or "<kind>"
    first = (
        f"1. The kind to query is `{kind_hint}`; skip the catalog."
        if kind_hint
        else "1. Read `infrahub://schema` (or call `get_schema()`) and pick the kind that matches."
    )
    wanted = (
        f"\nOnly these attributes matter to the user: {fields_wanted}." if fields_wanted else ""
    )
    attrs = ", include_attributes=True" if fields_wanted else ""
    return f"""\
Answer this infrastructure question{where}:

> {question}{wanted}

{first}
2. Read `infrahub://schema/{kind}` for its attributes, relationships and filter keys.
3. Call `get_nodes(kind="{kind}"{branch_arg}{attrs})` with filters built from those keys, or \
`search_nodes(query=..., kind="{kind}"{branch_arg})` when you only know part of a value.
4. Use `query_graphql` only if the answer needs data from related objects.
5. Answer, naming the kind, the filters and the branch you used."""


def explore_prompt(kind: str | None) -> str:
    """The ``explore_schema`` prompt."""
    if kind:
        return f"""\
Describe the schema of `{kind}`: read `infrahub://schema/{kind}` and list its attributes (name, \
type, optional), its relationships (name, peer kind, cardinality) and the filter keys `get_nodes` \
accepts. The detail is in TOON: a header names the fields, each indented line is one entry."""
    return """\
Describe this Infrahub instance's data model: read `infrahub://schema` for every kind and its \
label, group the kinds by namespace (the prefix of the kind name, such as `Dcim` or `Ipam`), and \
offer to read `infrahub://schema/<kind>` for any kind the user wants in detail."""


def change_prompt(description: str, kind: str | None, branch: str | None) -> str:
    """The ``make_infra_change`` prompt."""
    target = kind or "<kind>"
    where = f" on branch `{branch}`" if branch else ""
    return f"""\
Make this change{where}:

> {description}

1. Read `infrahub://schema/{target}` for required attributes and valid names.
2. Call `node_upsert(kind="{target}", data={{...}})` to create (no id) or update (with id or hfid) \
a node; use `node_delete` only after the user confirmed.
3. Read the nodes back with `get_nodes` to check the change.
4. Call `propose_changes(title=..., description=...)` to ask for review.
Writes land on a session branch; the default branch is never modified directly."""
