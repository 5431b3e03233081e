"""What a request must be before a byte of its body is read: the server's door, as ASGI middleware.

FastAPI reads and parses a request's whole body before its dependencies run, the API key check
included; Starlette's and FastAPI's body limits (`max_body_size`) answer without closing the connection
(uvicorn then reads the rest of an endless body to reach the next request); and uvicorn's timeouts are
for idle keep-alive connections and shutdown, none for a body that trickles in. So these checks come
first, in one middleware in front of the app, in this order, each before the body is touched (a
response with `Connection: close`, which uvicorn honours, ends a refused connection):

1. the API key (every path but /health, when the server has one);
2. the size the request announces (Content-Length) against `max_request_bytes`;
3. room for it in the server's byte budget: the bodies of all requests at once (held in memory or
   spooled to temporary files by the form parser until their answer is sent) stay within
   `max_held_bytes`.

Only then is the body read; uvicorn sends `100 Continue` to a client that waits for it only when the body
is first read, so a refused client never sends its body. While the body streams in, its bytes are
counted against the request's limit (chunked bodies announce none) and held in the budget as they
arrive: bytes announced but not sent hold nothing, so connections that announce large bodies and send
little cannot fill the budget. The body must keep coming: whole within `body_grace_s` seconds, or at
least `min_body_rate` bytes a second over every such span (a burst then a stall is cut off too), else
408. Every refusal sent before the whole body was read closes the connection, so nothing more of it is
read.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/health"})  # for load balancers: needs no key and says nothing of the model
CLOSE = (b"connection", b"close")


class ByteBudget:
    """Bytes of request bodies the server holds at once. Used from the event loop only (no lock)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.in_use = 0
        self.peak = 0  # the most held at once, for tests and benchmarks

    def has_room(self, nbytes: int) -> bool:
        return self.in_use + nbytes <= self.capacity

    def take(self, nbytes: int) -> bool:
        if not self.has_room(nbytes):
            return False
        self.in_use += nbytes
        self.peak = max(self.peak, self.in_use)
        return True

    def give(self, nbytes: int) -> None:
        self.in_use -= nbytes


@dataclass(frozen=True)
class BodyRules:
    max_bytes: int
    budget: ByteBudget
    grace_s: float  # a body arrives whole within this, or at least min_rate x grace_s bytes in each such span
    min_rate: float  # bytes per second


def _refusal(status: int, detail: str, close: bool, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def too_large(max_bytes: int) -> str:
    return f"The request is larger than {max_bytes:,} bytes: send fewer or smaller images at a time."


BUSY = "The server holds as many uploads as it may at once: send the request again in a few seconds."


class RequestGuard:
    """The checks above, in front of `app`."""

    def __init__(self, app, api_key: str | None, rules: BodyRules):
        self.app, self.api_key, self.rules = app, api_key, rules

    def _key_ok(self, headers: Headers) -> bool:
        given = headers.get(API_KEY_HEADER.lower(), "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or (length not in (None, "0"))
        if self.api_key and scope["path"] not in OPEN_PATHS and not self._key_ok(headers):
            detail = f"Missing or wrong API key: send it in the {API_KEY_HEADER} header."
            return await _refusal(401, detail, has_body)(scope, receive, send)
        if not has_body:
            return await self.app(scope, receive, send)
        declared = int(length) if length is not None and length.isdigit() else None
        if length is not None and declared is None:
            detail = "The Content-Length header is not a number."
            return await _refusal(400, detail, True)(scope, receive, send)
        if declared is not None and declared > self.rules.max_bytes:
            return await _refusal(413, too_large(self.rules.max_bytes), True)(scope, receive, send)
        if not self.rules.budget.has_room(declared or 0):
            return await _refusal(503, BUSY, True, retry_after=5)(scope, receive, send)
        body = _GuardedBody(self.rules, scope, receive, send)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.refused:  # after a refusal the app only saw the client leave: its error is moot
                raise
        finally:
            self.rules.budget.give(body.held)


class _GuardedBody:
    """One request's body as the app reads it: counted, held in the budget, timed."""

    def __init__(self, rules: BodyRules, scope, receive, send):
        self.rules, self.held = rules, 0
        self.scope, self._receive, self._send = scope, receive, send
        self.seen, self.done, self.started, self.refused = 0, False, False, False
        # When the body last made a whole span's worth of progress, and how much had come by then.
        self.mark, self.marked = time.monotonic(), 0

    async def _refuse(self, status: int, detail: str, retry_after: int | None = None) -> dict:
        if not self.started:
            self.refused = True
            await _refusal(status, detail, True, retry_after)(self.scope, self._receive, self._send)
        return {"type": "http.disconnect"}  # the app stops reading and answers no one

    async def receive(self) -> dict:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.done:
            return await self._receive()
        deadline = self.mark + self.rules.grace_s
        with anyio.move_on_after(max(deadline - time.monotonic(), 0.0)) as timer:
            message = await self._receive()
        if timer.cancelled_caught:
            rate = f"{self.rules.min_rate / 1024:,.0f} KiB/s"
            return await self._refuse(408, f"The request body came too slowly (less than {rate} over "
                                           f"{self.rules.grace_s:g} s): send it again.")  # fmt: skip
        if message["type"] != "http.request":
            self.done = True
            return message
        self.seen += len(message.get("body", b""))
        self.done = not message.get("more_body", False)
        if self.seen - self.marked >= self.rules.min_rate * self.rules.grace_s:  # a span's worth arrived
            self.mark, self.marked = time.monotonic(), self.seen
        if self.seen > self.rules.max_bytes:  # a chunked body that said nothing of its size
            return await self._refuse(413, too_large(self.rules.max_bytes))
        if self.seen > self.held:
            if not self.rules.budget.take(self.seen - self.held):
                return await self._refuse(503, BUSY, retry_after=5)
            self.held = self.seen
        return message

    async def send(self, message: dict) -> None:
        if self.refused:
            return  # our refusal went out; the app's own answer to a request it never got whole is dropped
        if message["type"] == "http.response.start":
            self.started = True
            if not self.done:  # answered before the whole body was read: read no more of it
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
        await self._send(message)
