"""A model response's body as read off the wire, for the transports that must look at it.

A transport that reads a response (its usage, its error) before the OpenAI client does reads it
raw, so the client still decodes it once, as it would have; these are the one way to read it,
to decode it for a look, and to hand the response on with the body ready to be read again.
"""

from __future__ import annotations

import httpx2


async def read_raw(response: httpx2.Response) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()


def with_body(response: httpx2.Response, raw: bytes) -> httpx2.Response:
    """The response again, its body (already read off the wire) ready to be read once more."""
    return httpx2.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx2.ByteStream(raw),
        extensions=response.extensions,
    )


def decoded(raw: bytes, headers: httpx2.Headers) -> bytes:
    """A body as read off the wire, decoded (gzip, br, ...) as the client would."""
    if not headers.get("content-encoding"):
        return raw
    response = httpx2.Response(
        200, headers={"content-encoding": headers["content-encoding"]}, content=raw
    )
    return response.read()
