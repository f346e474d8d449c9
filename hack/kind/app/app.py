"""Stand-in for the tutorial's servicedemo image on kind or a real cluster: the healthy behaviour of the local
cluster's app plane (tests/cluster/appd.py, described in tests/README.md) as a real process on port 80.

  GET /health, /healthz, /ready, /readyz -> 200 "ok"
  GET /, /index.html -> a page with Pod:, Namespace:, Image:, POD IP:, IMAGE_COLOR: and the environment
  other paths -> 404; methods other than GET/HEAD -> 405; every answer carries X-Pod-Name: <pod> and
  X-Pod-Image: <IMAGE>
"""

import html
import os
import re
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POD = os.environ.get("POD_NAME") or socket.gethostname()
IMAGE = os.environ.get("IMAGE", "greenlight/servicedemo:dev")  # a pod cannot see its image: set IMAGE to show it
PLAIN = re.compile(r"[A-Z_][A-Z0-9_]*")
SECRET = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|CERT")


def page() -> str:
    env = {k: v for k, v in os.environ.items() if PLAIN.fullmatch(k) and not SECRET.search(k)}
    color = html.escape(os.environ.get("IMAGE_COLOR", "white"))
    rows = "\n".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(env.items()))
    return (
        f"<html><head><title>{html.escape(POD)}</title></head>"
        f'<body style="background-color: {color}">\n'
        f"<h1>Pod: {html.escape(POD)}</h1>\n<p>Namespace: {html.escape(os.environ.get('POD_NAMESPACE', ''))}</p>\n"
        f"<p>Image: {html.escape(IMAGE)}</p>\n<p>POD IP: {html.escape(os.environ.get('POD_IP', ''))}</p>\n"
        f"<p>IMAGE_COLOR: {color}</p>\n<ul>\n{rows}\n</ul>\n</body></html>\n"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the app plane

    def respond(self, status: int, ctype: str, body: str, send_body: bool = True) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Pod-Name", POD)
        self.send_header("X-Pod-Image", IMAGE)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def do_GET(self, send_body: bool = True) -> None:
        route = self.path.split("?", 1)[0]
        if route in ("/health", "/healthz", "/ready", "/readyz"):
            self.respond(200, "text/plain", "ok\n", send_body)
        elif route in ("/", "/index.html"):
            self.respond(200, "text/html; charset=utf-8", page(), send_body)
        else:
            self.respond(404, "text/plain", f"not found: {route}\n", send_body)

    def do_HEAD(self) -> None:
        self.do_GET(send_body=False)

    def not_allowed(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.respond(405, "text/plain", "method not allowed\n")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = not_allowed

    def log_message(self, fmt: str, *args) -> None:  # probes hit /health often: log the rest only
        if not self.path.startswith(("/health", "/ready")):
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores SIGTERM without a handler
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "80"))), Handler)
    server.daemon_threads = True
    server.serve_forever()
