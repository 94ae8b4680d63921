"""Foreground streams (R-30..R-37): the SDK stream helper, the raw wire, failures, and clients that go away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import openai
import orjson
import pytest
import trio

from afactors.model import TurnContext, Update


def sse_events(text: str) -> list[dict]:
    """Parse an SSE body: every `data:` payload, checking each `event:` line names the payload's type."""
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        event = orjson.loads(lines["data"])
        assert lines["event"] == event["type"]
        events.append(event)
    return events


async def test_r31_r32_the_sdk_stream_helper_accepts_the_stream(serve) -> None:
    async with serve() as served, served.sdk() as client:
        async with client.responses.stream(model="m", input="stream me") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        stored = await client.responses.retrieve(final.id)
    assert final.output_text == "Turn 1. You said: stream me" == stored.output_text
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output[0].id == stored.output[0].id


async def test_r30_r33_raw_wire_headers_frames_and_numbering(serve) -> None:
    async with serve() as served:
        resp = await served.http.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    events = sse_events(resp.text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("response.completed") == 1 and events[-1]["type"] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Turn 1. You said: hi"


async def burst(messages: list) -> AsyncIterator[str]:
    """5,000 deltas as fast as a target can (one checkpoint apart): far more than the stream buffer holds."""
    for n in range(5_000):
        yield f"{n},"
        await trio.lowlevel.checkpoint()


async def test_a_burst_of_deltas_arrives_intact_and_in_order_through_the_sdk(serve) -> None:
    async with serve(burst) as served, served.sdk() as client:
        async with client.responses.stream(model="m", input="go") as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert deltas == [f"{n}," for n in range(5_000)]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "".join(deltas)


async def failing(messages: list) -> AsyncIterator[str]:
    yield "partial"
    raise RuntimeError("the model fell over")


async def test_r34_a_failing_target_ends_the_stream_with_response_failed(serve) -> None:
    async with serve(failing) as served, served.sdk() as client:
        async with client.responses.stream(model="m", input="x") as stream:
            events = [event async for event in stream]
            with pytest.raises(RuntimeError, match=r"response\.completed"):
                await stream.get_final_response()
        failed = await client.responses.retrieve(events[0].response.id)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error"
    assert "the model fell over" in events[-1].response.error.message
    assert failed.status == "failed" and failed.error.code == "server_error"


async def test_r23_a_failing_target_fails_a_plain_request_too(serve) -> None:
    async with serve(failing) as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="x")
    assert response.status == "failed" and response.error.code == "server_error" and response.output == []


async def test_r36_bad_input_on_a_stream_request_is_a_plain_json_error(serve) -> None:
    async with serve() as served:
        resp = await served.http.post("/v1/responses", json={"model": "m", "input": 5, "stream": True})
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
    assert resp.json()["error"]["param"] == "input"


class Hanging:
    """Says a word, then waits forever; records whether its run was cancelled."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.cancelled = trio.Event()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.entered.set()
        yield Update(delta="thinking")
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled.set()


async def test_r37_a_client_leaving_a_foreground_stream_cancels_the_turn(serve, poll, first_event) -> None:
    agent = Hanging()
    async with serve(agent) as served, served.sdk() as client:
        first = await first_event(served.url, {"model": "m", "input": "x", "stream": True})
        response_id = first["response"]["id"]
        with trio.fail_after(10):
            await agent.cancelled.wait()

        async def cancelled():
            try:
                got = await client.responses.retrieve(response_id)
            except openai.NotFoundError:
                return None
            return got if got.status == "cancelled" else None

        got = await poll(cancelled)
    assert got.output == [] and got.completed_at is not None


async def test_r37_a_client_leaving_a_plain_request_cancels_the_turn_too(serve) -> None:
    agent = Hanging()
    async with serve(agent) as served:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(served.http.post, "/v1/responses", json={"model": "m", "input": "x"}))
            await agent.entered.wait()
            nursery.cancel_scope.cancel()
        with trio.fail_after(10):
            await agent.cancelled.wait()


async def test_r35_no_invented_event_types_reach_a_strict_client(serve) -> None:
    async with serve() as served, served.sdk() as client:
        stream = await client.responses.create(model="m", input="x", stream=True)
        async with stream:
            kinds = {event.type async for event in stream}
    assert kinds <= {
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    }
    assert isinstance(client, openai.AsyncOpenAI)


async def torrent(messages: list) -> AsyncIterator[str]:
    for n in range(3000):  # never yields to the scheduler: overflows the turn's stream buffer
        yield f"w{n} "


async def test_r31_a_stream_that_fell_behind_still_delivers_the_whole_text(serve) -> None:
    async with serve(torrent) as served:
        resp = await served.http.post("/v1/responses", json={"model": "m", "input": "go", "stream": True})
    events = sse_events(resp.text)
    expected = "".join(f"w{n} " for n in range(3000))
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == expected
    assert [e["text"] for e in events if e["type"] == "response.output_text.done"] == [expected]
    assert events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
