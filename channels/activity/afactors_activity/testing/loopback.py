"""Serve a small Quart app on an ephemeral loopback port for the length of a block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio


@asynccontextmanager
async def serving(app: QuartTrio) -> AsyncIterator[str]:
    """`async with serving(app) as base_url:` the app on http://127.0.0.1:<free port>."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            yield urls[0]
        finally:
            stop.set()
