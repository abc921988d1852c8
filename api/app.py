"""The HTTP API (``agentq api``): the Python API over HTTP, with the same token model.

Every ``/v1`` route takes the user's Infrahub token as ``Authorization: Bearer <token>``, and
every read is scoped to the token that submitted: another token, and an id of the wrong shape,
get the same 404 as an id that does not exist. Errors are JSON, ``{"error": {"code": ...,
"message": ...}}``, with the codes of ``agentq.errors``: 400/422 for bad input, 401 without a
bearer token, 404, 413 for a body over AGENTQ_API_MAX_BODY_BYTES, 503 (saying only "Redis
unavailable") when Redis is unreachable. Bad input never gets a 500; anything unexpected gets a
500 that says only "internal error". Every response carries the headers of ``middleware``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from typing import Annotated, Any, Literal

import redis
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentq.answers import AnswerFormat
from agentq.batches import BatchItem
from agentq.errors import (
    AgentqError,
    BadRequest,
    ConfigError,
    ErrorCode,
    JobNotFound,
    ServiceUnavailable,
)
from agentq.jobs import ServiceTier
from agentq.metrics import RedisCollector, live_workers
from agentq.report_changes import render_changes
from agentq.reports import render
from agentq.settings import Settings, get_settings
from api.middleware import (
    BodyLimit,
    Measure,
    SecurityHeaders,
    add_security_headers,
    error_response,
)
from producer.checks import check_token
from producer.client import Client

STATUS_BY_CODE = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.AUTH_ERROR: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.IDEMPOTENCY_CONFLICT: 422,  # an idempotency key reused with another body
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.MCP_UNAVAILABLE: 503,  # a token could not be checked at submit
}
REDIS_UNAVAILABLE = "Redis unavailable"  # all a 503 says: never the URL, user, host or db
# The dashboard loads its script and style from this app and talks only to it.
DASHBOARD_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    """FastAPI's Swagger UI page with a CSP that lets it run: its assets from the CDN it names,
    and its one inline script by hash (so no 'unsafe-inline')."""
    page = get_swagger_ui_html(openapi_url=openapi_url, title=title)
    inline = re.findall(rb"<script>(.*?)</script>", bytes(page.body), flags=re.DOTALL)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in inline
    )
    page.headers["content-security-policy"] = (
        f"default-src 'none'; script-src {hashes} https://cdn.jsdelivr.net; "
        "style-src https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    return page


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="The question for the agent.")
    metadata: dict[str, Any] | None = None
    deadline_seconds: float | None = Field(None, description="Seconds one attempt may run.")
    allow_writes: bool = False
    webhook_url: str | None = None
    answer_format: AnswerFormat = Field("text", description="text, or items: a list of items.")
    item_key: str | None = Field(None, description="With items: the field naming an item.")
    service_tier: ServiceTier | None = Field(
        None, description="auto, default, flex (about half the price) or priority."
    )


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    metadata: dict[str, Any] | None = None
    id: str | None = Field(None, description="Matches the question across a report's runs.")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[str | QuestionIn] = Field(description="The questions, at most 10,000.")
    name: str | None = None
    max_inflight: int | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    deadline_seconds: float | None = None
    answer_format: AnswerFormat = "text"
    item_key: str | None = None
    service_tier: ServiceTier | None = None
    max_cost_usd: float | None = Field(
        None, description="Dollars its jobs may spend; the rest then end budget_exceeded."
    )
    dedupe: bool = Field(True, description="Ask identical questions once; each row gets it.")


class Accepted(BaseModel):
    id: str
    status: str = "queued"
    total: int = 1


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 404, 413, 422, 429, 503)
}


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AgentqError(
            "send the Infrahub token as 'Authorization: Bearer <token>'", code=ErrorCode.AUTH_ERROR
        )
    try:
        return check_token(token)
    except BadRequest as exc:
        raise AgentqError(str(exc), code=ErrorCode.AUTH_ERROR) from None


Token = Annotated[str, Depends(bearer_token)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a repeat of this submit (same token, within 24 h) return the first "
        "one's id with 200 instead of making another; the same key with a different body is "
        "a 422 idempotency_conflict.",
    ),
]
REPEATED: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "A repeat of an earlier submit with this key."}
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    client = Client(settings)
    app = FastAPI(
        title="agentq",
        version="1",
        description="Run Infrahub MCP agents as background jobs. Authenticate every /v1 call "
        "with `Authorization: Bearer <your Infrahub token>`.",
        docs_url=None,  # served below, with its own CSP
        redoc_url=None,
    )
    app.state.client = client
    _register_collector(RedisCollector(client.redis, settings.queue))
    # Outermost last: headers on every response, the 413 counted, the body limit nearest the app.
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(Measure)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(Exception)
    async def internal(_request: Request, _exc: Exception) -> JSONResponse:
        """The last resort: nothing about the failure reaches the client (it is logged)."""
        response = error_response(500, ErrorCode.INTERNAL, "internal error")
        add_security_headers(response.headers)  # this answer bypasses the middlewares
        return response

    @app.exception_handler(AgentqError)
    async def agentq_error(_request: Request, exc: AgentqError) -> JSONResponse:
        if isinstance(exc, ServiceUnavailable):
            return error_response(503, exc.code, REDIS_UNAVAILABLE)
        if isinstance(exc, ConfigError):
            return error_response(500, exc.code, str(exc))
        response = error_response(STATUS_BY_CODE.get(exc.code, 400), exc.code, str(exc))
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response

    @app.exception_handler(redis.RedisError)
    async def redis_error(_request: Request, _exc: redis.RedisError) -> JSONResponse:
        return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, REDIS_UNAVAILABLE)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return error_response(422, ErrorCode.BAD_REQUEST, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.NOT_FOUND if exc.status_code == 404 else ErrorCode.BAD_REQUEST
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(TimeoutError)
    async def timed_out(_request: Request, exc: TimeoutError) -> JSONResponse:
        return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, REDIS_UNAVAILABLE)

    @app.post("/v1/jobs", status_code=202, responses={**REPEATED, **ERRORS})
    def submit_job(
        body: JobIn,
        token: Token,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> Accepted:
        submitted = client.submit(
            body.question,
            token,
            metadata=body.metadata,
            deadline=body.deadline_seconds,
            allow_writes=body.allow_writes,
            webhook_url=body.webhook_url,
            answer_format=body.answer_format,
            item_key=body.item_key,
            idempotency_key=idempotency_key,
            service_tier=body.service_tier,
        )
        if submitted.repeat:
            response.status_code = 200
        return Accepted(id=submitted.id)

    @app.get("/v1/jobs", responses=ERRORS)
    def list_jobs(token: Token, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
        return {"jobs": [job.public() for job in client.list_jobs(token, limit)]}

    @app.get("/v1/jobs/{job_id}", responses=ERRORS)
    def get_job(job_id: str, token: Token) -> dict[str, Any]:
        return client.get(job_id, token).public()

    @app.get("/v1/jobs/{job_id}/trace", responses=ERRORS)
    def get_trace(job_id: str, token: Token) -> dict[str, Any]:
        return client.trace(job_id, token).to_json_dict()

    @app.delete("/v1/jobs/{job_id}", responses=ERRORS)
    def cancel_job(job_id: str, token: Token) -> dict[str, Any]:
        outcome = client.cancel(job_id, token)
        return {
            "id": outcome.job_id,
            "previous_status": str(outcome.previous),
            "cancelled": outcome.cancelled,
        }

    @app.post("/v1/batches", status_code=202, responses={**REPEATED, **ERRORS})
    def submit_batch(
        body: BatchIn,
        token: Token,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> Accepted:
        items = [
            BatchItem(q) if isinstance(q, str) else BatchItem(q.question, q.metadata, q.id)
            for q in body.questions
        ]
        submitted = client.submit_batch(
            items,
            token,
            name=body.name,
            max_inflight=body.max_inflight,
            webhook_url=body.webhook_url,
            metadata=body.metadata,
            deadline=body.deadline_seconds,
            answer_format=body.answer_format,
            item_key=body.item_key,
            idempotency_key=idempotency_key,
            service_tier=body.service_tier,
            max_cost_usd=body.max_cost_usd,
            dedupe=body.dedupe,
        )
        if submitted.repeat:
            response.status_code = 200
        return Accepted(id=submitted.id, total=len(items))

    @app.get("/v1/batches", responses=ERRORS)
    def list_batches(
        token: Token, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> dict[str, Any]:
        return {"batches": [b.public() for b in client.list_batches(token, limit)]}

    @app.get("/v1/batches/{batch_id}", responses=ERRORS)
    def get_batch(batch_id: str, token: Token) -> dict[str, Any]:
        return client.batch(batch_id, token).public()

    @app.get("/v1/batches/{batch_id}/report", responses=ERRORS)
    def get_report(
        batch_id: str, token: Token, format: Literal["json", "md", "csv"] = "json"
    ) -> Response:
        report = client.batch_report(batch_id, token)
        if format == "json":
            return JSONResponse(report.model_dump(mode="json"))
        if format == "md":
            return PlainTextResponse(
                render(report, "md"), media_type="text/markdown; charset=utf-8"
            )
        # A download, never a page: a browser hands it to a spreadsheet, which then sees cells
        # that ``agentq.text.csv_cell`` neutralised.
        name = "".join(c for c in report.batch_id if c.isascii() and (c.isalnum() or c in "-_"))
        return PlainTextResponse(
            render(report, "csv"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name or "report"}.csv"'},
        )

    @app.delete("/v1/batches/{batch_id}", responses=ERRORS)
    def cancel_batch(batch_id: str, token: Token) -> dict[str, Any]:
        return {"id": batch_id, "cancelled_jobs": client.cancel_batch(batch_id, token)}

    @app.get("/v1/webhook-secret", responses=ERRORS)
    def webhook_secret(token: Token) -> dict[str, str]:
        """The secret (whsec_...) that signs this token's webhooks: verify deliveries with it."""
        return {"secret": client.webhook_secret(token)}

    @app.get("/v1/reports", responses=ERRORS)
    def list_reports(token: Token) -> dict[str, Any]:
        return {"reports": client.scheduled.owned_by(token)}

    @app.get("/v1/reports/{name}/diff", responses=ERRORS)
    def diff_report(
        name: str,
        token: Token,
        from_run: Annotated[str | None, Query(alias="from")] = None,
        to_run: Annotated[str | None, Query(alias="to")] = None,
        format: Literal["json", "md", "text"] = "json",
    ) -> Response:
        """What changed between two finished runs (default: the latest against the one before);
        ``previous_run`` is null when there is no earlier run to compare with."""
        changes = client.report_diff(name, token, from_run=from_run, to_run=to_run)
        if format == "json":
            return JSONResponse(changes.model_dump(mode="json"))
        media = "text/markdown" if format == "md" else "text/plain"
        return PlainTextResponse(
            render_changes(changes, format), media_type=f"{media}; charset=utf-8"
        )

    @app.post("/v1/reports/{name}/runs", status_code=202, responses=ERRORS)
    def run_report(name: str, token: Token) -> dict[str, str]:
        """Ask the beat to start a run now; poll the request for the run's id."""
        request = client.scheduled.request_run(name, check_token(token))
        return {"request": request, "status": "waiting"}

    @app.get("/v1/reports/{name}/runs/requests/{request_id}", responses=ERRORS)
    def run_request(name: str, request_id: str, token: Token) -> dict[str, str]:
        """What the beat did with a request: waiting, started (with ``run``) or refused."""
        outcome = client.scheduled.request_outcome(name, request_id, check_token(token))
        if not outcome:
            raise JobNotFound(request_id, kind="request")
        return {"request": request_id, **outcome}

    @app.get("/healthz", responses={503: {"model": ErrorOut}})
    def healthz() -> Response:
        try:
            client.ping()
            workers = live_workers(client.redis)
        except (ServiceUnavailable, redis.RedisError):
            return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, REDIS_UNAVAILABLE)
        return JSONResponse({"redis": "ok", "workers": workers})

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        page = resources.files("api").joinpath("static/dashboard.html").read_text()
        return HTMLResponse(page, headers={"content-security-policy": DASHBOARD_CSP})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise StarletteHTTPException(404, "not found")
        content = resources.files("api").joinpath("static", name).read_bytes()
        return Response(content, media_type=STATIC_FILES[name])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        return docs_page(app.openapi_url or "/openapi.json", f"{app.title} - API docs")

    return app


_collectors: list[RedisCollector] = []


def _register_collector(collector: RedisCollector) -> None:
    """One Redis collector per process (an app made twice, as in tests, replaces it)."""
    for old in _collectors:
        REGISTRY.unregister(old)
    _collectors[:] = [collector]
    REGISTRY.register(collector)


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


__all__ = ["JobNotFound", "create_app", "serve"]
