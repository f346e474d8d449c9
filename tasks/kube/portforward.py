"""`kubectl port-forward` in-process: a listener on 127.0.0.1 whose every accepted connection becomes a new
apiserver port-forward stream (`kubernetes.stream.portforward`, WebSocket) to one pod's port. Plain HTTP
clients such as requests then talk to the pod as if it were local.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from dataclasses import dataclass

from kubernetes import client
from kubernetes.stream import portforward

from prefect_greenlight.tasks.kube.client import Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    namespace: str
    pod: str
    port: int


def _pipe(a: socket.socket, b, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while not stop.is_set():
            for key, _ in sel.select(timeout=1.0):
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()


class Tunnel:
    """Context manager: `with Tunnel(kube, target) as t: requests.get(t.url("/health"))`."""

    def __init__(self, kube: Kube, target: Target):
        self.kube, self.target = kube, target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.local_port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self.errors: list[str] = []

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.local_port}{path}"

    def _open_stream(self):
        # A dedicated ApiClient per stream: portforward() swaps `request` on the client it is given.
        api = client.CoreV1Api(self.kube.fresh_client())
        return portforward(api.connect_get_namespaced_pod_portforward, self.target.pod, self.target.namespace,
                           ports=str(self.target.port))

    def _handle(self, conn: socket.socket) -> None:
        pf = None
        try:
            pf = self._open_stream()
            remote = pf.socket(self.target.port)
            remote.setblocking(True)
            _pipe(conn, remote, self._stop)
            err = pf.error(self.target.port)
            if err:
                self.errors.append(err)
        except Exception as exc:  # noqa: BLE001 - reported to the caller as a failed request
            self.errors.append(f"port-forward to {self.target.pod}:{self.target.port} failed: {exc}")
        finally:
            conn.close()
            if pf is not None:
                pf.close()

    def _accept_loop(self) -> None:
        self._server.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def __enter__(self) -> "Tunnel":
        threading.Thread(target=self._accept_loop, daemon=True, name=f"tunnel-{self.target.pod}").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
