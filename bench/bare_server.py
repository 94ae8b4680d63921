"""The bare stack: one quart-trio route on hypercorn's trio worker answering POST /v1/responses.

It parses the JSON body and returns a realistic, complete Responses object (the same shape afactors
renders), with no conversation state: the floor that afactors' Responses channel is measured against.

    python -m bench.bare_server --port 8000
Stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial

import orjson
import trio
from hypercorn.config import Config
from hypercorn.events import Event
from hypercorn.trio import serve, tcp_server
from quart import Response, request
from quart_trio import QuartTrio

from bench.common import turn_text


def _patch_hypercorn() -> None:
    """Shield hypercorn's connection bookkeeping from quart-trio's cancelled request nursery.

    Without it, keep-alive timeouts and `Connection: close` are never honoured (shared/reference/stack.md §3).
    """
    original = tcp_server.TCPServer.protocol_send

    async def protocol_send(self: tcp_server.TCPServer, event: Event) -> None:
        with trio.CancelScope(shield=True):
            await original(self, event)

    tcp_server.TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]


def response_object(model: str, text: str, previous_response_id: str | None = None) -> dict[str, object]:
    """A completed, non-streaming Responses object with one assistant message."""
    now = int(time.time())
    return {
        "id": f"resp_{secrets.token_hex(16)}",
        "object": "response",
        "created_at": now,
        "completed_at": now,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_{secrets.token_hex(16)}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": previous_response_id,
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 1,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 3,
        },
        "metadata": {},
    }


def _error(status: int, message: str) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return Response(orjson.dumps(body), status=status, content_type="application/json")


def create_app() -> QuartTrio:
    """The bare app: POST /v1/responses only."""
    app = QuartTrio(__name__)

    @app.post("/v1/responses")
    async def create_response() -> Response:
        try:
            body = orjson.loads(await request.get_data())
        except orjson.JSONDecodeError:
            return _error(400, "body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(400, "body must be a JSON object with a string 'model'")
        previous = body.get("previous_response_id")
        reply = response_object(body["model"], turn_text(1), previous if isinstance(previous, str) else None)
        return Response(orjson.dumps(reply), content_type="application/json")

    return app


async def _serve(host: str, port: int, app: QuartTrio | None = None) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app or create_app(), config, shutdown_trigger=stop.wait))
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                stop.set()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _patch_hypercorn()
    trio.run(_serve, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
