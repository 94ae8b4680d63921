"""Output items and their events: chunking, reconciling with the stored reply, live stream == stored replay."""

from __future__ import annotations

import random
import time

import attrs
import pytest

from afactors.actors._replies import ReplyBuilder
from afactors.model import FunctionCallPart, Message, ReasoningPart, TextPart, Update, UsagePart
from afactors_responses.codec import (
    EventStream,
    OutputBuilder,
    output_items,
    parse_create,
    replay,
    split_chunks,
    view_of_request,
)
from afactors_responses.codec.output import CHUNK_CHARS


def chunk_all(text: str) -> list[str]:
    chunks, rest = split_chunks(text)
    return chunks + ([rest] if rest else [])


def test_chunks_are_words_with_their_leading_whitespace() -> None:
    assert chunk_all("Hello  big\nworld ") == ["Hello", "  big", "\nworld", " "]
    assert split_chunks("Hello wor") == (["Hello"], " wor")


def test_chunks_are_capped_so_text_without_spaces_still_streams() -> None:
    text = "x" * (CHUNK_CHARS * 2 + 5)
    assert chunk_all(text) == ["x" * CHUNK_CHARS, "x" * CHUNK_CHARS, "x" * 5]


def test_chunking_does_not_depend_on_how_the_text_arrived() -> None:
    rng = random.Random(7)
    alphabet = "ab c\n  d" + "é"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 6))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        got: list[str] = []
        pending = ""
        for piece in pieces:
            chunks, pending = split_chunks(pending + piece)
            got.extend(chunks)
        if pending:
            got.append(pending)
        assert got == chunk_all(text), (text, pieces)
        assert "".join(got) == text


def deltas(events: list[dict]) -> list[str]:
    return [e["delta"] for e in events if e["type"] == "response.output_text.delta"]


def test_unchunked_deltas_pass_through_as_they_came() -> None:
    builder = OutputBuilder("resp_x")
    events = builder.add(Update(delta="Hel")) + builder.add(Update(delta="lo w")) + builder.add(Update(delta=""))
    assert [e["type"] for e in events[:2]] == ["response.output_item.added", "response.content_part.added"]
    assert deltas(events) == ["Hel", "lo w"]


def test_close_sends_text_the_stream_missed_then_the_done_events() -> None:
    builder = OutputBuilder("resp_x")
    builder.add(Update(delta="Hello"))
    events = builder.close("completed", (Message("assistant", "Hello world"),))
    assert deltas(events) == [" world"]
    assert [e["type"] for e in events[1:]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert events[1]["text"] == "Hello world"
    assert builder.items == [
        {
            "type": "message",
            "id": "msg_x_0",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello world", "annotations": [], "logprobs": []}],
        }
    ]


def test_close_with_text_that_does_not_continue_the_stream_ends_with_the_reply_text() -> None:
    builder = OutputBuilder("resp_x")
    builder.add(Update(delta="first attempt"))
    events = builder.close("completed", (Message("assistant", "second attempt"),))
    assert deltas(events) == []
    assert events[0]["text"] == "second attempt"


def test_close_without_a_reply_keeps_the_streamed_text_as_incomplete() -> None:
    builder = OutputBuilder("resp_x")
    builder.add(Update(delta="partial"))
    builder.close("incomplete")
    assert builder.items[0]["status"] == "incomplete"
    assert builder.items[0]["content"][0]["text"] == "partial"


def test_whole_parts_follow_the_text_as_their_own_items() -> None:
    final = (
        Message(
            "assistant",
            (
                TextPart("Let me check."),
                ReasoningPart("thinking"),
                FunctionCallPart("c1", "lookup", '{"q":1}'),
                UsagePart(1, 2),
            ),
        ),
    )
    items = output_items("resp_abc", final, "completed")
    assert [(i["type"], i["id"]) for i in items] == [
        ("message", "msg_abc_0"),
        ("reasoning", "rs_abc_1"),
        ("function_call", "fc_abc_2"),
    ]
    assert items[1]["summary"] == [{"type": "summary_text", "text": "thinking"}]
    assert items[2] == {
        "type": "function_call",
        "id": "fc_abc_2",
        "call_id": "c1",
        "name": "lookup",
        "arguments": '{"q":1}',
        "status": "completed",
    }


def test_a_reply_without_text_has_only_its_part_items() -> None:
    items = output_items("resp_abc", (Message("assistant", (FunctionCallPart("c", "f", "{}"),)),), "completed")
    assert [i["id"] for i in items] == ["fc_abc_0"]
    assert output_items("resp_abc", (), "completed") == []


UPDATE_PATTERNS = {
    "word deltas": [Update(delta=w) for w in ["Turn", " 1.", " You", " said:", " hi"]],
    "odd deltas": [Update(delta=d) for d in ["Tu", "rn 1. Y", "ou sa", "id: h", "i  ", "x" * 70]],
    "deltas and parts": [
        Update(part=FunctionCallPart("c1", "f", "{}")),
        Update(delta="Hello"),
        Update(part=TextPart(" whole")),
        Update(delta=" there"),
        Update(part=ReasoningPart("hmm")),
        Update(part=UsagePart(3, 4)),
    ],
    "only parts": [Update(part=FunctionCallPart("c1", "f", "{}"))],
    "nothing": [],
}


@pytest.mark.parametrize("pattern", UPDATE_PATTERNS)
def test_r41_a_live_background_stream_equals_its_replay_from_the_stored_reply(pattern: str) -> None:
    updates = UPDATE_PATTERNS[pattern]
    start = view_of_request(parse_create({"input": "hi", "background": True}), "resp_bg", time.time())
    live = EventStream(start, chunked=True)
    events = live.start()
    recorded = ReplyBuilder()  # exactly what the actor stores for these updates
    for update in updates:
        events.extend(live.add(update))
        recorded.add(update)
    reply = recorded.reply()
    final = attrs.evolve(start, status="completed", output=reply.messages, usage=reply.usage, completed_at=time.time())
    events.extend(live.finish(final))
    assert events == replay(final)
    assert events[-1]["response"]["output"] == output_items("resp_bg", reply.messages, "completed")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
