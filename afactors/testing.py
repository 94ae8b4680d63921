"""Helpers for testing a host and its channels end to end: `python -m afactors` in a child process, a raw
HTTP/1.1 exchange for requests no well-behaved client sends (a body shorter than announced, a huge length), and a
store that finds its disk full.

Nothing in the runtime imports this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import h11
import trio

from afactors.store import LmdbStore, Store

__all__ = ["disk_full", "raw_exchange", "serve_cli"]


@contextmanager
def serve_cli(
    *args: str,
    port: int = 0,
    pythonpath: Iterable[str | os.PathLike[str]] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `python -m afactors ARGS --port PORT` until it prints the URL it serves; yield the process and the URL.

    `pythonpath` entries go in front of `PYTHONPATH` (for a `--target module:name` of the test's own), `env` is
    added to the environment. On the way out the process is killed with SIGKILL if it still runs, as a crash
    would: a test that wants an orderly stop signals it and waits first.
    """
    environ = {**os.environ, **(env or {})}
    paths = [str(Path(p)) for p in pythonpath]
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "afactors", *args, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = next((line.split()[-1] for line in proc.stdout if line.startswith("serving on ")), None)
        if url is None:
            raise AssertionError(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


async def raw_exchange(
    url: str, request: h11.Request, body: bytes = b"", *, timeout: float = 10.0
) -> tuple[h11.Response, bytes]:
    """Send `request` and then exactly `body` (which may be shorter than its content-length) to the server at
    `url`; read the whole answer within `timeout` seconds and return its head and body."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
    async with stream:
        connection = h11.Connection(h11.CLIENT)
        await stream.send_all((connection.send(request) or b"") + body)
        response: h11.Response | None = None
        data = b""
        with trio.fail_after(timeout):
            while not isinstance(event := connection.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    connection.receive_data(await stream.receive_some())
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    data += event.data
    if response is None:
        raise AssertionError("the server closed the connection without a response")
    return response, data


def disk_full(store: Store, full: bool = True) -> None:
    """Make `store` see a full disk (it refuses writes with `StoreFull`, as below its `min_free`), or a disk with
    room again, from its next write on. LMDB's store only (it watches free space; PostgreSQL reports a full disk
    when a write fails)."""
    if not isinstance(store, LmdbStore):
        raise TypeError(f"disk_full works on the LMDB store, not on {type(store).__name__}")
    store.min_free = 1 << 60 if full else 0
    store._space_checked = -1e9  # look at the free space again at once
