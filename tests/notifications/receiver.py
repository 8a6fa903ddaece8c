"""A webhook receiver on loopback that checks every signature, for the webhook tests.

`Receiver(secret)` serves on a spare port in a thread; `plan` is the answers to give, one per
request in order (then `default`): an HTTP status, "hang" (answer nothing for `hang_seconds`),
"redirect" (302 to a private address), or "huge" (a 2xx that streams far more than Gatehouse
reads). Every request is recorded with its headers, body and whether its signature verified.
Also runnable as a process: `python -m tests.notifications.receiver PORT SECRET PLAN LOG`
appends one JSON line per request to LOG (the real-worker tests).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifications.signing import verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: Any

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    plan: list[Any] = field(default_factory=list)
    default: Any = 200
    hang_seconds: float = 30.0
    requests: list[Received] = field(default_factory=list)
    log_path: str | None = None

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    answer = receiver.plan.pop(0) if receiver.plan else receiver.default
                    verified = verify(self.headers.get("Gatehouse-Signature", ""), body,
                                      receiver.secret, now=int(time.time()))
                    received = Received(dict(self.headers), body, verified, answer)
                    receiver.requests.append(received)
                    if receiver.log_path:
                        with open(receiver.log_path, "a") as log:
                            log.write(json.dumps({
                                "event": json.loads(body)["id"], "verified": verified,
                                "answer": answer,
                                "delivery": self.headers.get("Gatehouse-Delivery"),
                            }) + "\n")
                if answer == "hang":
                    time.sleep(receiver.hang_seconds)
                    return
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                if answer == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 30))
                    self.end_headers()
                    try:
                        chunk = b"x" * 65536
                        for _ in range(1 << 14):
                            self.wfile.write(chunk)
                    except OSError:
                        pass  # Gatehouse hung up after reading its limit
                    return
                self.send_response(int(answer))
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if int(answer) < 300 else b"nope")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/gatehouse"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    port, secret, plan, log = sys.argv[1:5]
    receiver = Receiver(secret, plan=json.loads(plan), log_path=log)
    receiver.server.server_close()
    receiver.server = ThreadingHTTPServer(("127.0.0.1", int(port)),
                                          receiver.server.RequestHandlerClass)
    receiver.server.daemon_threads = True
    receiver.server.serve_forever()
