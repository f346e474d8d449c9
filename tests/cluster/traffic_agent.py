"""Traffic agent: steady HTTP GETs to one address, run INSIDE the cluster's network namespace (stdlib only).

    ip netns exec <netns> python -m tests.cluster.traffic_agent --host 10.96.0.10 --port 80 --rate 100 --duration 60

Two kinds of clients share the rate: `new` requests each open a connection of their own (`Connection: close`;
kube-proxy picks a backend per connection, so each is an independent draw) from a bounded pool, scheduled on a
fixed clock so a hanging request does not slow the others; `ka` requests run on a few keep-alive connections,
each reused for up to --keepalive-requests requests and then replaced (a connection the server closed while idle
is noticed before reuse and replaced, as Go's and browsers' clients do; that is not a failure).

Every request is one JSON line on stdout: t (wall clock at send, comparable with time.time() of the caller),
lat (s), conn (new|ka), cid (connection number), status (0 = no answer), pod (X-Pod-Name), image (X-Pod-Image,
else the page's `Image:`), color (the page's `IMAGE_COLOR:`), err (empty when answered). The last line is
{"event": "end", ...} with the counts. Bounded: it stops by itself after --duration seconds or --max-requests
requests (hard caps MAX_DURATION_S, MAX_RATE), or when stdin says `stop` or closes (its parent is gone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass

MAX_DURATION_S = 900.0
MAX_RATE = 1000.0
IMAGE_RE = re.compile(r"Image: ([^<\n]*)")
COLOR_RE = re.compile(r"IMAGE_COLOR: ([^<\n]*)")


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    path: str
    rate: float
    duration_s: float
    max_requests: int
    keepalive_share: float
    keepalive_conns: int
    keepalive_requests: int
    new_workers: int
    timeout_s: float
    ignore_stdin: bool = False
    body: bool = False  # put each answer's body in its record (one-shot use)
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (a gateway's Host, an A/B header)

    def new_rate(self) -> float:
        return self.rate * (1 - self.keepalive_share)

    def per_ka_conn_rate(self) -> float:
        return self.rate * self.keepalive_share / max(1, self.keepalive_conns)


class Agent:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.stop = threading.Event()
        self.out_lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.sent = self.skipped = self.cids = 0
        self.slots = threading.BoundedSemaphore(plan.new_workers)
        self.t0 = time.monotonic()

    # -- bookkeeping
    def _emit(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def _claim(self) -> bool:
        """One request may go out (the count and the clock are both bounded)."""
        with self.count_lock:
            if self.stop.is_set() or self.sent >= self.plan.max_requests \
                    or time.monotonic() - self.t0 > self.plan.duration_s:
                self.stop.set()
                return False
            self.sent += 1
            return True

    def _cid(self) -> int:
        with self.count_lock:
            self.cids += 1
            return self.cids

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.plan.host, self.plan.port, timeout=self.plan.timeout_s)

    # -- one request
    def _request(self, conn: http.client.HTTPConnection, kind: str, cid: int) -> bool:
        """Send one GET, emit its record; True when the connection may be reused."""
        t, start = time.time(), time.perf_counter()
        rec = {"t": t, "conn": kind, "cid": cid, "status": 0, "pod": "", "image": "", "color": "", "err": ""}
        reusable = False
        try:
            conn.request("GET", self.plan.path, headers={**dict(self.plan.headers),
                                                         "Connection": "close" if kind == "new" else "keep-alive"})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            image = resp.getheader("X-Pod-Image") or (m.group(1) if (m := IMAGE_RE.search(body)) else "")
            color = m.group(1) if (m := COLOR_RE.search(body)) else ""
            rec.update(status=resp.status, pod=resp.getheader("X-Pod-Name") or "", image=image, color=color)
            if self.plan.body:
                rec["body"] = body[:4000]
            reusable = not resp.will_close
        except (OSError, http.client.HTTPException) as exc:
            rec["err"] = f"{type(exc).__name__}: {exc}"[:200]
        rec["lat"] = round(time.perf_counter() - start, 6)
        self._emit(rec)
        return reusable

    # -- the two kinds of clients
    def _one_new(self) -> None:
        try:
            conn = self._connection()
            try:
                self._request(conn, "new", self._cid())
            finally:
                conn.close()
        finally:
            self.slots.release()

    def new_connections(self) -> None:
        """Fixed-clock dispatcher: slot i at t0 + i/rate; a slot with every worker busy is skipped (counted)."""
        rate = self.plan.new_rate()
        if rate <= 0:
            return
        i = 0
        while not self.stop.is_set():
            delay = self.t0 + i / rate - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            i += 1
            if not self.slots.acquire(blocking=False):
                with self.count_lock:
                    self.skipped += 1
                continue
            if not self._claim():
                self.slots.release()
                return
            threading.Thread(target=self._one_new, daemon=True).start()

    @staticmethod
    def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
        sock = conn.sock
        if sock is None:
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def keepalive(self, index: int) -> None:
        rate = self.plan.per_ka_conn_rate()
        if rate <= 0:
            return
        offset = index / (rate * max(1, self.plan.keepalive_conns))  # spread the connections' clocks
        conn, cid, used, i = None, 0, 0, 0
        while not self.stop.is_set():
            delay = self.t0 + offset + i / rate - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            i += 1
            if delay < -1.0:  # more than a second behind (a hang): resume the clock from now
                i = int((time.monotonic() - self.t0 - offset) * rate) + 1
            if conn is not None and (used >= self.plan.keepalive_requests or self._closed_by_server(conn)):
                conn.close()
                conn = None
            if conn is None:
                conn, cid, used = self._connection(), self._cid(), 0
            if not self._claim():
                break
            used += 1
            if not self._request(conn, "ka", cid):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def watch_stdin(self) -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        self.stop.set()

    def run(self) -> None:
        self._emit({"event": "start", "t": time.time(), "plan": vars(self.plan)})
        if not self.plan.ignore_stdin:
            threading.Thread(target=self.watch_stdin, daemon=True).start()
        workers = [threading.Thread(target=self.new_connections, daemon=True)]
        ka = self.plan.keepalive_conns if self.plan.keepalive_share > 0 else 0
        workers += [threading.Thread(target=self.keepalive, args=(k,), daemon=True) for k in range(ka)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + self.plan.duration_s + self.plan.timeout_s + 5
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for _ in range(self.plan.new_workers):  # wait for the in-flight `new` requests (each bounded by timeout)
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        self._emit({"event": "end", "t": time.time(), "sent": self.sent, "skipped": self.skipped})


def parse(argv: list[str] | None = None) -> Plan:
    p = argparse.ArgumentParser(description="steady HTTP GETs to one address (run inside the network namespace)")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second, both kinds together")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (at most %d)" % MAX_DURATION_S)
    p.add_argument("--max-requests", type=int, default=0, help="default: rate x duration")
    p.add_argument("--keepalive-share", type=float, default=0.5, help="share of the rate on keep-alive connections")
    p.add_argument("--keepalive-conns", type=int, default=4)
    p.add_argument("--keepalive-requests", type=int, default=20, help="requests per keep-alive connection")
    p.add_argument("--new-workers", type=int, default=128, help="concurrent new-connection requests at most")
    p.add_argument("--timeout", type=float, default=2.0, help="connect and read timeout per request, seconds")
    p.add_argument("--ignore-stdin", action="store_true", help="run to the bounds only (one-shot use)")
    p.add_argument("--body", action="store_true", help="record each answer's body (first 4000 characters)")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                   help="a request header, e.g. Host:web.test (repeatable)")
    a = p.parse_args(argv)
    rate, duration = min(a.rate, MAX_RATE), min(a.duration, MAX_DURATION_S)
    cap = int(rate * duration) + 1
    return Plan(a.host, a.port, a.path, rate, duration, min(a.max_requests or cap, cap),
                min(max(a.keepalive_share, 0.0), 1.0), max(a.keepalive_conns, 1), max(a.keepalive_requests, 1),
                max(a.new_workers, 1), a.timeout, a.ignore_stdin, a.body,
                tuple((name.strip(), value.strip()) for name, value in (h.split(":", 1) for h in a.header)))


if __name__ == "__main__":
    Agent(parse()).run()
