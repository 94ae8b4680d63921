"""The bare stack, streaming: `bench.bare_server`'s route plus `"stream": true`, as naive SSE (one write per event).

A streamed request gets the Responses event sequence (created, in_progress, item and part added, `--deltas`
text deltas `--interval-ms` apart, the closing events, completed), rendered with orjson and written one event per
yield: what any quart-trio app on hypercorn's trio worker does, with no host, state or durability. With
`--interval-ms 0` it yields to the loop between deltas, as fast as it can. The floor `bench.streaming` measures
afactors against.

    python -m bench.bare_stream --port 8000 [--deltas 10000] [--interval-ms 0]
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import AsyncIterator, Sequence

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio

from bench import bare_server


def _frame(event: dict[str, object]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def events(model: str, deltas: int, interval: float) -> AsyncIterator[bytes]:
    """The SSE frames of one streamed response."""
    final = bare_server.response_object(model, "")
    item_id = f"msg_{secrets.token_hex(16)}"
    sequence = 0

    def frame(kind: str, **fields: object) -> bytes:
        nonlocal sequence
        sequence += 1
        return _frame({"type": kind, **fields, "sequence_number": sequence - 1})

    running = {**final, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    yield frame("response.created", response=running)
    yield frame("response.in_progress", response=running)
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    yield frame("response.output_item.added", output_index=0, item=item)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield frame("response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part)
    text = []
    for i in range(deltas):
        if interval:
            await trio.sleep(interval)
        else:
            await trio.lowlevel.checkpoint()
        delta = f"d{i} "
        text.append(delta)
        yield frame(
            "response.output_text.delta",
            item_id=item_id,
            output_index=0,
            content_index=0,
            delta=delta,
            logprobs=[],
        )
    part = {**part, "text": "".join(text)}
    yield frame(
        "response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=part["text"], logprobs=[]
    )
    yield frame("response.content_part.done", item_id=item_id, output_index=0, content_index=0, part=part)
    done_item = {**item, "status": "completed", "content": [part]}
    yield frame("response.output_item.done", output_index=0, item=done_item)
    yield frame("response.completed", response={**final, "output": [done_item]})


def create_app(deltas: int, interval: float) -> QuartTrio:
    """The bare app, whose POST /v1/responses streams when asked to."""
    app = bare_server.create_app()
    plain = app.view_functions["create_response"]

    async def create_response() -> Response:
        body = await request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or body.get("stream") is not True:
            return await plain()  # type: ignore[misc,no-any-return]
        response = Response(
            events(str(body.get("model", "m")), deltas, interval),
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        response.timeout = None
        return response

    app.view_functions["create_response"] = create_response
    return app


def parse_args(module: str, doc: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of a streaming peer: `--host`, `--port`, `--deltas`, `--interval-ms`."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--interval-ms", type=float, default=0.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT."""
    args = parse_args("bench.bare_stream", __doc__, argv)
    bare_server._patch_hypercorn()
    app = create_app(args.deltas, args.interval_ms / 1000.0)
    trio.run(bare_server._serve, args.host, args.port, app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
