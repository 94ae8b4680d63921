"""Background responses (R-10, R-41, R-43): queued answers, resumable streams, cancellation."""

from __future__ import annotations

import openai
import orjson
import pytest
import trio


def sse_events(text: str) -> list[dict]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_r10_background_answers_queued_and_completes(serve, poll) -> None:
    async with serve() as served, served.sdk() as client:
        queued = await client.responses.create(model="m", input="later", background=True)
        assert queued.status in ("queued", "in_progress") and queued.background is True and queued.output == []

        async def done():
            got = await client.responses.retrieve(queued.id)
            return got if got.status == "completed" else None

        finished = await poll(done)
    assert finished.output_text == "Turn 1. You said: later" and finished.background is True


async def test_r10_background_must_be_stored(serve) -> None:
    async with serve() as served, served.sdk() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="x", background=True, store=False)
    assert refused.value.param == "background"


async def test_r41_a_running_background_response_replays_from_zero_then_follows(serve, gate) -> None:
    async with serve(gate) as served, served.sdk() as client:
        queued = await client.responses.create(model="m", input="hello there", background=True)
        await gate.entered.wait()
        async with client.responses.stream(response_id=queued.id) as stream:
            seen = []
            async for event in stream:
                seen.append(event)
                if event.type == "response.output_text.delta" and len(seen) == 5:
                    gate.open()  # the first word came from the replay; the rest arrives live
            final = await stream.get_final_response()
        replayed = (await served.http.get(f"/v1/responses/{queued.id}", params={"stream": "true"})).text
    assert final.output_text == "Turn 1. hello there"
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    assert seen[0].response.status == "queued" and seen[-1].type == "response.completed"

    def essence(event: dict) -> tuple:
        return event["sequence_number"], event["type"], event.get("delta"), event.get("text")

    live = [essence(vars(event)) for event in seen]
    assert [essence(e) for e in sse_events(replayed)] == live  # the replay, rendered from the record, matches


async def test_r41_starting_after_skips_what_the_client_has(serve) -> None:
    async with serve() as served, served.sdk() as client:
        queued = await client.responses.create(model="m", input="one two three", background=True)
        everything = sse_events((await served.http.get(f"/v1/responses/{queued.id}?stream=true")).text)
        tail = sse_events((await served.http.get(f"/v1/responses/{queued.id}?stream=true&starting_after=4")).text)
        async with client.responses.stream(response_id=queued.id, starting_after=4) as stream:
            helper = [event.sequence_number async for event in stream]
    assert tail == everything[5:]
    assert helper == [e["sequence_number"] for e in everything[5:]]


async def test_r41_only_background_responses_stream_again(serve) -> None:
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="x")
        resp = await served.http.get(f"/v1/responses/{response.id}?stream=true")
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "stream"


async def test_r43_cancel_stops_a_running_background_response_and_ends_its_streams(serve, gate) -> None:
    async with serve(gate) as served, served.sdk() as client:
        queued = await client.responses.create(model="m", input="x", background=True)
        await gate.entered.wait()
        following = trio.Event()
        kinds: list[str] = []

        async def follower() -> None:
            stream = await client.responses.retrieve(queued.id, stream=True)
            async with stream:
                async for event in stream:
                    kinds.append(event.type)
                    following.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower)
            await following.wait()
            cancelled = await client.responses.cancel(queued.id)
            again = await client.responses.cancel(queued.id)
        got = await client.responses.retrieve(queued.id)
    assert cancelled.status == again.status == got.status == "cancelled"
    assert gate.finished == 0
    assert kinds[0] == "response.created"
    assert not set(kinds) & {"response.completed", "response.failed", "response.incomplete"}


async def test_r43_cancel_of_a_queued_background_response(serve, gate) -> None:
    async with serve(gate, busy_policy="enqueue") as served, served.sdk() as client:
        first = await client.responses.create(model="m", input="a", background=True, conversation="c")
        await gate.entered.wait()
        second = await client.responses.create(model="m", input="b", background=True, conversation="c")
        cancelled = await client.responses.cancel(second.id)
        gate.open()
        async with client.responses.stream(response_id=first.id) as stream:
            done = await stream.get_final_response()
    assert cancelled.status == "cancelled" and done.status == "completed"
    assert gate.started == 1


async def test_r43_only_background_responses_can_be_cancelled(serve) -> None:
    async with serve() as served, served.sdk() as client:
        response = await client.responses.create(model="m", input="x")
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.cancel(response.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.cancel("resp_unknown")
    assert "background" in refused.value.message


async def test_r43_cancelling_a_finished_response_returns_it_unchanged(serve) -> None:
    async with serve() as served, served.sdk() as client:
        queued = await client.responses.create(model="m", input="x", background=True)
        async with client.responses.stream(response_id=queued.id) as stream:
            await stream.get_final_response()
        after = await client.responses.cancel(queued.id)
    assert after.status == "completed" and after.output_text == "Turn 1. You said: x"


async def test_r10_r31_background_stream_on_create_and_a_client_leaving_does_not_stop_it(
    serve, gate, poll, first_event
) -> None:
    async with serve(gate) as served, served.sdk() as client:
        first = await first_event(served.url, {"model": "m", "input": "bg", "background": True, "stream": True})
        assert first["type"] == "response.created" and first["response"]["status"] == "queued"
        await gate.entered.wait()
        gate.open()

        async def done():
            got = await client.responses.retrieve(first["response"]["id"])
            return got if got.status == "completed" else None

        finished = await poll(done)
    assert finished.output_text == "Turn 1. bg"


async def test_a_follower_stream_ends_cleanly_when_the_host_shuts_down(serve, gate) -> None:
    kinds: list[str] = []
    following = trio.Event()
    async with trio.open_nursery() as nursery, serve(gate, drain_timeout=0.5) as served:
        client = served.sdk()
        queued = await client.responses.create(model="m", input="x", background=True)
        await gate.entered.wait()

        async def follower() -> None:
            async with client:
                stream = await client.responses.retrieve(queued.id, stream=True)
                async with stream:
                    async for event in stream:  # an incomplete chunked read would raise here
                        kinds.append(event.type)
                        following.set()

        nursery.start_soon(follower)
        await following.wait()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in kinds


async def test_r07_a_response_still_running_cannot_be_continued_yet(serve, gate) -> None:
    async with serve(gate) as served, served.sdk() as client:
        running = await client.responses.create(model="m", input="x", background=True)
        await gate.entered.wait()
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="m", input="y", previous_response_id=running.id)
        gate.open()
    assert refused.value.param == "previous_response_id" and "in_progress" in refused.value.message


async def test_r44_an_unfinished_response_must_end_before_it_is_deleted(serve, gate) -> None:
    async with serve(gate) as served, served.sdk() as client:
        running = await client.responses.create(model="m", input="x", background=True)
        await gate.entered.wait()
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.delete(running.id)
        await client.responses.cancel(running.id)
        await client.responses.delete(running.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(running.id)
    assert "in_progress" in refused.value.message
