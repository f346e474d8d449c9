"""A TCP proxy on 127.0.0.1 between greenlight and the apiserver that can make the apiserver "hang".

TLS passes through untouched (the apiserver's serving certificate names 127.0.0.1, so a kubeconfig pointing at the
proxy verifies as usual). Modes:

- pass:  bytes flow both ways.
- stall: every connection, the open ones and any new one, stops moving bytes; new connections are accepted and
         never answered (not even the TLS handshake). Requests in flight hang mid-stream; watches go silent.
- heal:  new connections pass again; the connections that were stalled stay stalled for good (as a half-dead
         TCP connection would), so only a client-side timeout gets a client off them.

    with StallProxy(apiserver_port) as proxy:
        kubeconfig = proxy.kubeconfig(admin_kubeconfig, tmp_path / "via-proxy.kubeconfig")
        proxy.stall(); ...; proxy.heal()
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml


@dataclass
class _Link:
    client: socket.socket
    upstream: socket.socket | None
    stalled: bool = False
    closed: bool = False


class StallProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stalling = False
        self._stop = threading.Event()
        self.accepted = 0
        self.accepted_while_stalled = 0
        self.stalled_at: float | None = None
        self.healed_at: float | None = None

    @classmethod
    def for_kubeconfig(cls, kubeconfig: str) -> "StallProxy":
        server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
        url = urlparse(server)
        return cls(url.port or 443, url.hostname or "127.0.0.1")

    # -------------------------------------------------------------------------------------------- control
    def kubeconfig(self, source: str, dest: Path) -> str:
        """A copy of `source` whose clusters point at this proxy."""
        doc = yaml.safe_load(Path(source).read_text())
        for c in doc["clusters"]:
            c["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        dest.write_text(yaml.safe_dump(doc))
        dest.chmod(0o600)
        return str(dest)

    def stall(self) -> int:
        """Stop every connection; returns how many open connections were stalled."""
        with self._lock:
            self._stalling = True
            self.stalled_at = time.monotonic()
            for link in self._links:
                link.stalled = True
            return sum(1 for link in self._links if not link.closed)

    def heal(self) -> None:
        """New connections pass again; stalled ones stay stalled."""
        with self._lock:
            self._stalling = False
            self.healed_at = time.monotonic()

    def stalled_connections(self) -> int:
        with self._lock:
            return sum(1 for link in self._links if link.stalled and not link.closed)

    # -------------------------------------------------------------------------------------------- plumbing
    def __enter__(self) -> "StallProxy":
        threading.Thread(target=self._accept_loop, daemon=True, name="stall-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        with self._lock:
            for link in self._links:
                self._close(link)

    def _accept_loop(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                stalled = self._stalling
                self.accepted_while_stalled += int(stalled)
            upstream = None
            if not stalled:
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    conn.close()  # the apiserver is down: refuse, as it would
                    continue
            link = _Link(conn, upstream, stalled=stalled)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._pump, args=(link,), daemon=True).start()

    def _close(self, link: _Link) -> None:
        link.closed = True
        for s in (link.client, link.upstream):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def _pump(self, link: _Link) -> None:
        """Copy bytes both ways while not stalled; a stalled link holds everything (reads nothing, sends
        nothing) until the proxy stops."""
        if link.upstream is None:
            self._stop.wait()
            self._close(link)
            return
        sel = selectors.DefaultSelector()
        sel.register(link.client, selectors.EVENT_READ, link.upstream)
        sel.register(link.upstream, selectors.EVENT_READ, link.client)
        try:
            while not self._stop.is_set():
                if link.stalled:
                    self._stop.wait(0.1)
                    continue
                for key, _ in sel.select(timeout=0.1):
                    if link.stalled:
                        break
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            self._close(link)
