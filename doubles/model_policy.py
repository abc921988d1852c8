"""What the offline demo model says: a deterministic policy over the conversation it is sent.

For one agent run it behaves like a careful small model answering an inventory question: it calls
one tool chosen from the question's words, then answers from that tool's output. Everything here
is a pure function of the request, so tests can check the model's choices without HTTP.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

ANSWER_PREFIX = "[offline demo model] "
SITES = ("atl1", "dfw1", "jfk1", "ord1")

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


def count_tokens(*parts: Any) -> int:
    """A stable stand-in for a tokenizer: a quarter of the JSON length, rounded up."""
    size = sum(len(part if isinstance(part, str) else json.dumps(part)) for part in parts)
    return max(1, math.ceil(size / 4))


def decide(conversation: Conversation, policy: str, script: list[dict[str, Any]]) -> Decision:
    if policy == "echo":
        return Decision(text=ANSWER_PREFIX + conversation.question)
    if policy == "script":
        return _scripted(conversation, script)
    if policy == "always_tool":
        call = choose_tool(conversation)
        return Decision(tool_calls=[call]) if call else Decision(text=ANSWER_PREFIX + "no tools")
    if not conversation.tool_outputs and conversation.tools:
        call = choose_tool(conversation)
        if call is not None:
            return Decision(tool_calls=[call])
    return Decision(text=answer(conversation.question, conversation.tool_outputs))


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


def answer(question: str, tool_outputs: list[str]) -> str:
    """A deterministic answer summarising the last tool output."""
    if not tool_outputs:
        return ANSWER_PREFIX + f"I have no inventory data to answer: {question}"
    output = tool_outputs[-1]
    stripped = output.strip()
    if stripped.lower().startswith(("error", "tool error")) or "error occurred" in stripped:
        return ANSWER_PREFIX + f"The tool failed, so I cannot answer. It said: {stripped[:300]}"
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    prefix = re.search(r"start(?:s|ing)? with ['\"]?(\w+)", question, re.IGNORECASE)
    if isinstance(data, dict) and "nodes" in data and isinstance(data["nodes"], list):
        labels = [str(node) for node in data["nodes"]]
        total = data.get("total_count", len(labels))
        return ANSWER_PREFIX + f"Found {total}: " + ", ".join(labels)
    if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        kinds = sorted(data)
        if prefix:
            kinds = [k for k in kinds if k.startswith(prefix.group(1))]
            return (
                ANSWER_PREFIX
                + f"{len(kinds)} kinds start with {prefix.group(1)}: "
                + ", ".join(kinds)
            )
        return ANSWER_PREFIX + f"{len(kinds)} kinds: " + ", ".join(kinds)
    if isinstance(data, list):
        return ANSWER_PREFIX + f"Found {len(data)}: " + ", ".join(str(x) for x in data)
    return ANSWER_PREFIX + "From the inventory: " + stripped[:300]


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
    return Conversation(question, outputs, _tool_specs(body.get("tools")))


def responses_conversation(body: dict[str, Any]) -> Conversation:
    """The conversation in a Responses request (full input; no server-side state is kept)."""
    items = body.get("input")
    if isinstance(items, str):
        return Conversation(items, [], _tool_specs(body.get("tools")))
    question = ""
    outputs: list[str] = []
    for item in items or []:
        kind = item.get("type")
        if kind == "function_call_output":
            outputs.append(_text_of(item.get("output")))
        elif item.get("role") == "user":
            question = _text_of(item.get("content"))
    return Conversation(question, outputs, _tool_specs(body.get("tools")))
