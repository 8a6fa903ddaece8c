"""gunicorn's sync worker, answering a request line over `limit_request_line` with JSON.

gunicorn refuses such a line before any request exists (no method, no path), with an HTML page.
Clients of Gatehouse are API clients: they get the JSON error of SPEC §4 instead, with the same
414 status. Every other error is gunicorn's own handling, unchanged. Only gunicorn imports this
module (`worker_class` in gunicorn.conf.py).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gunicorn.http.errors import LimitRequestLine
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

_BODY = json.dumps({
    "error": "request_too_large",
    "message": "The request line (method and URL) is too long; no Gatehouse URL needs that many "
               "bytes.",
}).encode()
_RESPONSE = (
    b"HTTP/1.1 414 URI Too Long\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n"
    b"\r\n" + _BODY
)


class SyncWorker(GunicornSyncWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if not isinstance(exc, LimitRequestLine):
            super().handle_error(req, client, addr, exc)
            return
        peer = addr[0] if addr else ""
        self.log.warning("Invalid request from ip=%s: %s", peer, exc)
        with contextlib.suppress(OSError):  # the client is gone: nothing to answer
            client.sendall(_RESPONSE)
