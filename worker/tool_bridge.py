"""The agent's MCP tools as function tools, built once per process, called on each job's session.

Given ``mcp_servers=[server]``, the Agents SDK lists the server's tools before every model turn
and converts (and deep-copies) each one into a ``FunctionTool`` for that turn: about a tenth of
a job's CPU. The tools are the same for every user of a server, only the session (which carries
the user's token) differs. So the worker builds the function tools once per process for each
(server URL, listing version, tool policy) and gives the agent ``tools=``; each tool finds the
job's own MCP session in the run context (``JobContext.mcp_session``) and sends ``tools/call``
on it. Every call still carries the job's token, is paced by the shared MCP rate limit and is
retried by the job's transport (``worker.mcp_session``).

What the SDK did per call is done here, the same way: the arguments parsed as a JSON object and
checked for the required ones, the result turned into the same model-visible output. Each call
is one ``tool_call`` step of the trace (``worker.tracing.tool_step``), failed or not.

Failures are sorted as ``worker.failures`` says: a rejected token, a rate limit, an unreachable
or failing server or a timeout ends the attempt at once (raised, so no further model call is
paid); anything the model can act on (bad arguments, an unknown kind, a tool's own error) goes
back to it as the tool's output, marked failed in the trace.

The session's own ``call_tool`` is not used: it lists the tools again on each new session to
validate structured results, which is the request this module exists to save. The result is
validated here instead, against the cached listing's output schema, with one compiled validator
per tool per process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
from agents import FunctionTool
from agents.tool import ToolOutputImageDict, ToolOutputTextDict
from agents.tool_context import ToolContext
from jsonschema import validators
from mcp.client.session import ClientSession
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult, Tool

from agentq.errors import AgentqError, linked
from worker.failures import (
    JobContext,
    classify_tool_failure,
    failure_for_http_status,
    first_line,
    tool_error_message,
)
from worker.tool_policy import Listing, ToolPolicy
from worker.tracing import tool_output_text, tool_step

# The server's name in traces (each tool call's step says which server it went to).
SERVER_NAME = "infrahub"

OutputItem = ToolOutputTextDict | ToolOutputImageDict
ToolOutput = OutputItem | list[OutputItem]


class ToolBridge:
    """The function tools of each (listing, policy) this process has seen. Thread-safe; the tools
    themselves hold no job state, so one list serves every job on every loop at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str, ToolPolicy], list[FunctionTool]] = {}

    def tools(self, listing: Listing, policy: ToolPolicy) -> list[FunctionTool]:
        key = (listing.url, listing.version, policy)
        with self._lock:
            built = self._built.get(key)
        if built is not None:
            return built
        built = [bridged_tool(tool) for tool in listing.tools if policy.offers(tool)]
        with self._lock:
            # An older version of the same server's listing will not be asked for again.
            for old in [k for k in self._built if k[0] == listing.url and k[1] != listing.version]:
                del self._built[old]
            return self._built.setdefault(key, built)


def bridged_tool(tool: Tool) -> FunctionTool:
    """One MCP tool as a function tool whose calls go to the running job's own session."""
    schema = json.loads(json.dumps(tool.input_schema))  # the listing's copy stays untouched
    schema.setdefault("properties", {})  # MCP allows a schema without; OpenAI's API does not
    required = [name for name in schema.get("required", []) if isinstance(name, str)]
    check_output = output_checker(tool)

    async def invoke(context: ToolContext[Any], arguments: str) -> ToolOutput | str:
        job = context.context
        if not isinstance(job, JobContext) or job.mcp_session is None:
            raise AgentqError("a bridged MCP tool ran outside an agentq job")
        started = time.time()
        parsed, error = parse_arguments(tool.name, arguments, required)
        outcome: ToolOutput | str = ""
        try:
            if error is not None:
                outcome = failed(job, error)
                return outcome
            try:
                result = await call_tool(job.mcp_session, tool.name, parsed)
            except Exception as exc:
                ending = run_ending(exc, job)
                if ending is not None:
                    failure = job.record(ending)
                    error = failure.message
                    raise failure from None
                error = tool_error_message(exc)
                outcome = failed(job, error)
                return outcome
            outcome = model_output(result)
            if result.is_error:
                text = tool_output_text(outcome)
                ending = classify_tool_failure(Exception(text))
                if ending is not None:
                    failure = job.record(ending)
                    error = failure.message
                    raise failure
                error = first_line(text)
            elif check_output is not None:
                problem = check_output(result)
                if problem is not None:
                    error = problem
                    outcome = failed(job, problem)
            return outcome
        finally:
            tool_step(
                job, tool.name, SERVER_NAME, parsed, started, tool_output_text(outcome), error
            )

    return FunctionTool(
        name=tool.name,
        description=describe(tool),
        params_json_schema=schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,  # MCP schemas are rarely strict-compatible (the SDK's default)
    )


def parse_arguments(name: str, arguments: str, required: list[str]) -> tuple[Any, str | None]:
    """The call's arguments as the SDK would pass them (a JSON object), and what is wrong with
    them for the model to fix, if anything: the server is not asked then."""
    try:
        parsed = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments, f"the arguments for {name} are not valid JSON"
    if not isinstance(parsed, dict):
        return parsed, f"the arguments for {name} must be a JSON object"
    missing = sorted(key for key in required if key not in parsed)
    if missing:
        return parsed, f"{name} is missing required parameters: {', '.join(missing)}"
    return parsed, None


async def call_tool(session: ClientSession, name: str, arguments: dict[str, Any]) -> CallToolResult:
    """``tools/call`` on ``session``, without the session's listing of tools to validate it."""
    request = CallToolRequest(params=CallToolRequestParams(name=name, arguments=arguments))
    return await session.send_request(request, CallToolResult)


def run_ending(error: BaseException, job: JobContext) -> AgentqError | None:
    """The failure that ends the attempt for a failed call, or None if the model should see it.
    The response hook may already have recorded the cause (a 401); an HTTP status the MCP client
    raised is read from the error itself, as the SDK's own call did."""
    if job.failure is not None:
        return job.failure
    for cause in linked(error, contexts=True):
        if isinstance(cause, httpx2.HTTPStatusError):
            failure = failure_for_http_status(cause.response.status_code, None, "MCP server")
            if failure is not None:
                return failure
    return classify_tool_failure(error)


def failed(job: JobContext, message: str) -> str:
    """What the model sees for a call that failed in a way it can act on."""
    job.tool_errors.append(message)
    return f"Tool error: {message}"


def model_output(result: CallToolResult) -> ToolOutput:
    """The model-visible output, as the SDK makes it from MCP content: text as text, images as
    data URLs, anything else as its JSON; one item alone, several as a list."""
    items: list[OutputItem] = []
    for item in result.content:
        if item.type == "text":
            items.append(ToolOutputTextDict(type="text", text=item.text))
        elif item.type == "image":
            url = f"data:{item.mime_type};base64,{item.data}"
            items.append(ToolOutputImageDict(type="image", image_url=url))
        else:
            items.append(ToolOutputTextDict(type="text", text=item.model_dump_json()))
    return items[0] if len(items) == 1 else items


def describe(tool: Tool) -> str:
    """The description the model reads; the title when the server gave none."""
    title = tool.annotations.title if tool.annotations is not None else None
    return tool.description or tool.title or title or ""


def output_checker(tool: Tool) -> Callable[[CallToolResult], str | None] | None:
    """A check of a result's structured content against the tool's declared output schema, as
    an MCP client session makes; None for a tool that declares none."""
    schema = tool.output_schema
    if schema is None:
        return None
    try:
        validator_class = validators.validator_for(schema)
        validator_class.check_schema(schema)
        validator = validator_class(schema)
    except Exception as exc:
        reason = f"the server declared an invalid output schema for {tool.name}: {exc}"
        return lambda _result: reason

    def check(result: CallToolResult) -> str | None:
        if result.structured_content is None:
            return f"{tool.name} has an output schema but returned no structured content"
        errors = sorted(validator.iter_errors(result.structured_content), key=str)
        if errors:
            return f"invalid structured content returned by {tool.name}: {errors[0].message}"
        return None

    return check
