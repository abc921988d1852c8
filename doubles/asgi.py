"""ASGI plumbing both doubles share: serving them, and the faults they inject at that level.

A dropped connection and a hung request need the server's own ``send`` (under uvicorn it is bound
to the connection, whose transport can be aborted), so the doubles are plain ASGI apps rather than
framework endpoints.
"""

from __future__ import annotations

import asyncio

import anyio
import uvicorn
from starlette.types import ASGIApp, Receive, Send


async def drop_connection(receive: Receive, send: Send) -> None:
    """Close the TCP connection without any HTTP response (as a crashed upstream would).

    Under uvicorn, ``send`` is bound to the connection's request cycle, whose transport we
    abort (a reset, no bytes). Elsewhere, fall back to a truncated response: headers announcing
    a body that never comes, which the server then has to cut off.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        transport.abort()
        with anyio.move_on_after(1):
            while (await receive())["type"] != "http.disconnect":
                pass
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"jsonrpc":', "more_body": True})


async def hang(receive: Receive, send: Send, seconds: float) -> bool:
    """Say nothing for ``seconds``; False if the client gave up (disconnected) first.

    If the double is stopped meanwhile (uvicorn cancels requests still open after its graceful
    shutdown period), it hangs up instead of letting uvicorn log the cancellation as a crash.
    """
    try:
        with anyio.move_on_after(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return False
        return True
    except asyncio.CancelledError:
        await drop_connection(receive, send)
        return False


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Run ``app`` under uvicorn until stopped, quietly and cheaply per request."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Hanging requests and open streams must not keep a stopping double alive.
            timeout_graceful_shutdown=2,
        )
    )
    server.run()
