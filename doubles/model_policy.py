"""What the offline demo model says: a deterministic policy over the conversation it is sent.

For one agent run it behaves like a careful small model answering an inventory question: it calls
one tool chosen from the question's words, then answers from that tool's output. Everything here
is a pure function of the request, so tests can check the model's choices without HTTP.

When the request asks for structured output (an Agent with an ``output_type``: Chat Completions'
``response_format`` or the Responses API's ``text.format``, type ``json_schema``), the final answer
is JSON that fits the requested schema (:func:`fill_schema`), built from the same tool output the
free-text answer summarises, so the SDK's parsing and agentq's ``items`` answers can be tested
offline. ``structured="off_schema"`` answers free text anyway, as a model that ignores the schema
would, so a test can see the SDK refuse it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

ANSWER_PREFIX = "[offline demo model] "
SITES = ("atl1", "dfw1", "jfk1", "ord1")
# What a final answer does when a schema was asked for: fit it, or ignore it (free text).
STRUCTURED_MODES = ("follow", "off_schema")
# A schema that needs deeper nesting than this (a required self-reference) cannot be filled.
_MAX_DEPTH = 32

# (words in the question, kind for get_nodes); the first match wins.
_KIND_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("interface",), "InterfacePhysical"),
    (("prefix",), "IpamPrefix"),
    (("ip address", "address"), "IpamIPAddress"),
    (("platform",), "DcimPlatform"),
    (("device",), "DcimDevice"),
    (("site", "location"), "LocationSite"),
)


@dataclass
class ToolSpec:
    name: str
    required: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    """The parts of a request the policy looks at."""

    question: str
    tool_outputs: list[str]
    tools: list[ToolSpec]
    # The JSON schema the final answer must fit (structured output), or None for free text.
    output_schema: dict[str, Any] | None = None

    def offers(self, name: str) -> bool:
        return any(tool.name == name for tool in self.tools)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Decision:
    """Either tool calls or a final text answer."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str | None = None


@dataclass(frozen=True)
class Findings:
    """What a final answer is made of: the free-text summary, and the node labels it names (in
    the tool's order) with their count, which a structured answer lists instead of summarising."""

    text: str
    labels: list[str] = field(default_factory=list)
    count: int = 0


def count_tokens(*parts: Any) -> int:
    """A stable stand-in for a tokenizer: a quarter of the JSON length, rounded up."""
    size = sum(len(part if isinstance(part, str) else json.dumps(part)) for part in parts)
    return max(1, math.ceil(size / 4))


def decide(
    conversation: Conversation,
    policy: str,
    script: list[dict[str, Any]],
    structured: str = "follow",
) -> Decision:
    """The model's turn. A scripted text is sent as written (its author decides whether it fits
    a schema); every other final answer fits the requested schema unless ``off_schema``."""
    if policy == "echo":
        return _final(conversation, Findings(ANSWER_PREFIX + conversation.question), structured)
    if policy == "script":
        return _scripted(conversation, script)
    if policy == "always_tool":
        call = choose_tool(conversation)
        if call:
            return Decision(tool_calls=[call])
        return _final(conversation, Findings(ANSWER_PREFIX + "no tools"), structured)
    if not conversation.tool_outputs and conversation.tools:
        call = choose_tool(conversation)
        if call is not None:
            return Decision(tool_calls=[call])
    found = findings(conversation.question, conversation.tool_outputs)
    return _final(conversation, found, structured)


def _final(conversation: Conversation, found: Findings, structured: str) -> Decision:
    schema = conversation.output_schema
    if schema is None or structured == "off_schema":
        return Decision(text=found.text)
    return Decision(text=json.dumps(fill_schema(schema, found)))


def choose_tool(conversation: Conversation) -> ToolCall | None:
    """The one tool call that answers the question, if an offered tool fits."""
    question = conversation.question.lower()
    wanted: ToolCall
    if "schema" in question or re.search(r"\bkinds?\b", question):
        wanted = ToolCall("get_schema", {})
    else:
        kind = next((k for words, k in _KIND_WORDS if any(w in question for w in words)), None)
        if kind is not None:
            arguments: dict[str, Any] = {"kind": kind}
            site = next((s for s in SITES if s in question), None)
            if site is not None and kind != "LocationSite":
                arguments["filters"] = {"site__name__value": site}
            wanted = ToolCall("get_nodes", arguments)
        else:
            words = re.findall(r"[A-Za-z0-9_.-]+", conversation.question)
            longest = max(words, key=len) if words else "device"
            wanted = ToolCall("search_nodes", {"query": longest, "kind": "DcimDevice"})
    if conversation.offers(wanted.name):
        return wanted
    for tool in conversation.tools:
        if not tool.required:
            return ToolCall(tool.name, {})
    return None


def findings(question: str, tool_outputs: list[str]) -> Findings:
    """The free-text answer and the labels it names, from the last tool output."""
    if not tool_outputs:
        return Findings(ANSWER_PREFIX + f"I have no inventory data to answer: {question}")
    output = tool_outputs[-1]
    stripped = output.strip()
    if stripped.lower().startswith(("error", "tool error")) or "error occurred" in stripped:
        return Findings(
            ANSWER_PREFIX + f"The tool failed, so I cannot answer. It said: {stripped[:300]}"
        )
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    prefix = re.search(r"start(?:s|ing)? with ['\"]?(\w+)", question, re.IGNORECASE)
    if isinstance(data, dict) and "nodes" in data and isinstance(data["nodes"], list):
        labels = [str(node) for node in data["nodes"]]
        total = data.get("total_count", len(labels))
        count = total if isinstance(total, int) else len(labels)
        return Findings(ANSWER_PREFIX + f"Found {total}: " + ", ".join(labels), labels, count)
    if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        listed = list(data)
        if prefix:
            listed = [k for k in listed if k.startswith(prefix.group(1))]
            text = f"{len(listed)} kinds start with {prefix.group(1)}: "
        else:
            text = f"{len(listed)} kinds: "
        return Findings(ANSWER_PREFIX + text + ", ".join(sorted(listed)), listed, len(listed))
    if isinstance(data, list):
        labels = [str(x) for x in data]
        return Findings(
            ANSWER_PREFIX + f"Found {len(labels)}: " + ", ".join(labels), labels, len(labels)
        )
    return Findings(ANSWER_PREFIX + "From the inventory: " + stripped[:300])


# --- structured answers ---------------------------------------------------------------------


def fill_schema(schema: dict[str, Any], found: Findings) -> Any:
    """A value that fits ``schema``, made of ``found``, so that a structured answer says what the
    free text says in whatever shape the agent asked for. An object gets its required properties
    (every property if none are listed), an array one element per label (each element filled
    from that label alone, so an item object's key property, and any string in it, is the label),
    a string the free text, a number the count, a boolean true. ``$ref`` (to ``#/...``), ``const``,
    ``enum`` and ``anyOf``/``oneOf`` (the first alternative that is not null) are followed, so
    the SDK's pydantic schemas and its ``{"response": ...}`` wrapper are filled too."""
    return _fill(schema, found, schema, 0)


def _fill(schema: Any, found: Findings, root: dict[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if not isinstance(schema, dict):
        return found.text  # ``true``: anything fits
    if isinstance(schema.get("$ref"), str):
        return _fill(_resolve(schema["$ref"], root), found, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        return _fill(_merged(schema, root), found, root, depth + 1)
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if _type_of(o) != "null"), options[0])
            return _fill(chosen, found, root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(properties)
        return {
            str(name): _fill(properties.get(name, {}), found, root, depth + 1) for name in names
        }
    if kind == "array":
        # An element stands for one node: its own lists are empty, the output says no more.
        return [
            _fill(schema.get("items", {}), Findings(label, [], 1), root, depth + 1)
            for label in found.labels
        ]
    if kind in ("integer", "number"):
        return found.count
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return found.text


def _type_of(schema: Any) -> str | None:
    """The schema's type (the first that is not null, for a list), inferred from its keywords
    when it names none."""
    if not isinstance(schema, dict):
        return None
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "null" if declared else None)
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _merged(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """An ``allOf`` as one schema: the parts' properties and required names together."""
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[Any] = list(merged.get("required") or [])
    for part in schema["allOf"]:
        if isinstance(part, dict) and isinstance(part.get("$ref"), str):
            part = _resolve(part["$ref"], root)
        if not isinstance(part, dict):
            continue
        properties.update(part.get("properties") or {})
        required += [name for name in part.get("required") or [] if name not in required]
        for key, value in part.items():
            merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _resolve(reference: str, root: dict[str, Any]) -> Any:
    """The schema a local JSON pointer (``#/$defs/Item``) names, or ``{}`` if it names none."""
    target: Any = root
    if not reference.startswith("#"):
        return {}
    for part in reference[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return {}
        target = target[part]
    return target


def _scripted(conversation: Conversation, script: list[dict[str, Any]]) -> Decision:
    if not script:
        return Decision(text=ANSWER_PREFIX + "empty script")
    step = script[min(len(conversation.tool_outputs), len(script) - 1)]
    if "text" in step:
        return Decision(text=str(step["text"]))
    calls = step.get("tools") or [step]
    return Decision(
        tool_calls=[ToolCall(str(c["tool"]), dict(c.get("arguments") or {})) for c in calls]
    )


# --- reading requests -----------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _tool_specs(tools: list[dict[str, Any]] | None) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for tool in tools or []:
        function = tool.get("function", tool)
        name = function.get("name")
        if isinstance(name, str):
            parameters = function.get("parameters") or {}
            specs.append(ToolSpec(name, list(parameters.get("required") or [])))
    return specs


def requested_schema(output_format: Any) -> dict[str, Any] | None:
    """The JSON schema in a request's output format, either API's shape: Chat Completions'
    ``{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`` or the Responses
    API's ``{"type": "json_schema", "name", "strict", "schema"}``; None for plain text."""
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    inner = output_format.get("json_schema", output_format)
    schema = inner.get("schema") if isinstance(inner, dict) else None
    return schema if isinstance(schema, dict) else {}


def chat_conversation(body: dict[str, Any]) -> Conversation:
    """The conversation in a Chat Completions request."""
    messages = body.get("messages") or []
    question = ""
    outputs: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            question = _text_of(message.get("content"))
        elif role == "tool":
            outputs.append(_text_of(message.get("content")))
    schema = requested_schema(body.get("response_format"))
    return Conversation(question, outputs, _tool_specs(body.get("tools")), schema)


def responses_conversation(body: dict[str, Any]) -> Conversation:
    """The conversation in a Responses request (full input; no server-side state is kept)."""
    items = body.get("input")
    text = body.get("text")
    schema = requested_schema(text.get("format") if isinstance(text, dict) else None)
    if isinstance(items, str):
        return Conversation(items, [], _tool_specs(body.get("tools")), schema)
    question = ""
    outputs: list[str] = []
    for item in items or []:
        kind = item.get("type")
        if kind == "function_call_output":
            outputs.append(_text_of(item.get("output")))
        elif item.get("role") == "user":
            question = _text_of(item.get("content"))
    return Conversation(question, outputs, _tool_specs(body.get("tools")), schema)
