"""A webhook gate for the hook e2e tests: an HTTP server on 127.0.0.1 in the test process (the CLI runs on the
same host) that records every POST (path, Idempotency-Key, JSON body, all headers) and answers as told: a status,
or "hang" (no answer for HANG_S, longer than any hook timeout the tests give).

    with Receiver(lambda call: 200 if call.n == 1 else 500) as gate:
        ... --hook-webhook pre-switch=<gate.url("/gate")> ...
    assert [c.body["phase"] for c in gate.calls] == ["pre-switch"]
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

HANG_S = 8


@dataclass(frozen=True)
class Call:
    n: int  # 1 for the first call
    path: str
    key: str  # the Idempotency-Key header
    body: dict
    at: float  # time.time()
    headers: dict[str, str] = field(default_factory=dict)  # every request header, as sent


class Receiver:
    def __init__(self, answer: Callable[[Call], int | str] = lambda _call: 200):
        self.answer = answer
        self.calls: list[Call] = []
        lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) or b"{}"
                with lock:
                    call = Call(len(receiver.calls) + 1, self.path, self.headers.get("Idempotency-Key", ""),
                                json.loads(raw), time.time(), dict(self.headers.items()))
                    receiver.calls.append(call)
                what = receiver.answer(call)
                if what == "hang":
                    time.sleep(HANG_S)
                    return
                body = b"go\n" if 200 <= int(what) < 300 else b"no: the gate says stop\n"
                self.send_response(int(what))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="hook-receiver")

    def url(self, path: str = "/gate") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def on(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path.split("?")[0] == path]

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
