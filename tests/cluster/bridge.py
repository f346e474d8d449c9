"""A byte pipe between the cluster's network namespace and the apiserver in the root namespace.

The apiserver listens on 127.0.0.1 of the root namespace, which a process inside the network namespace cannot
reach. A Unix socket file is reachable from both (it lives in the file system), so two of these processes carry
the bytes:

    netns:  127.0.0.1:<apiserver port>  --tcp-to-unix-->  <state>/apiserver.sock
    root:   <state>/apiserver.sock      --unix-to-tcp-->  127.0.0.1:<apiserver port>

and a kubeconfig that names https://127.0.0.1:<port> works unchanged inside the namespace (TLS passes through).
Every client connection gets a connection of its own on the far side, so nothing outlives an apiserver restart:
while the apiserver is down a new connection is closed at once, as a refused one would be.

    python -m tests.cluster.bridge unix-to-tcp --unix PATH --port PORT   # root namespace
    python -m tests.cluster.bridge tcp-to-unix --port PORT --unix PATH   # inside the namespace (ip netns exec)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("bridge")
Dial = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be sending
    except (ConnectionError, OSError):
        writer.close()


async def _splice(dial: Dial, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        far_reader, far_writer = await dial()
    except OSError as exc:
        log.info("far side unreachable (%s): closing the client connection", exc)
        writer.close()
        return
    try:
        await asyncio.gather(_copy(reader, far_writer), _copy(far_reader, writer))
    finally:
        for w in (writer, far_writer):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


async def unix_to_tcp(path: str, port: int, ready_file: Path | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(
        lambda r, w: _splice(lambda: asyncio.open_connection("127.0.0.1", port), r, w), path)
    os.chmod(path, 0o600)
    log.info("bridging %s -> 127.0.0.1:%d", path, port)
    if ready_file:
        ready_file.write_text("listening\n")
    async with server:
        await server.serve_forever()


async def tcp_to_unix(port: int, path: str, ready_file: Path | None) -> None:
    server = await asyncio.start_server(
        lambda r, w: _splice(lambda: asyncio.open_unix_connection(path), r, w), "127.0.0.1", port)
    log.info("bridging 127.0.0.1:%d -> %s", port, path)
    if ready_file:
        ready_file.write_text("listening\n")
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=["unix-to-tcp", "tcp-to-unix"])
    parser.add_argument("--unix", required=True, help="the socket file")
    parser.add_argument("--port", type=int, required=True, help="the TCP port on 127.0.0.1")
    parser.add_argument("--ready-file", type=Path, help="written once it listens")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.direction == "unix-to-tcp":
        asyncio.run(unix_to_tcp(args.unix, args.port, args.ready_file))
    else:
        asyncio.run(tcp_to_unix(args.port, args.unix, args.ready_file))


if __name__ == "__main__":
    main()
