"""The pure mapping between afactors and Agent Framework messages and streamed updates."""

from __future__ import annotations

import pytest
from agent_framework import Content
from agent_framework import Message as AFMessage

from afactors.model import (
    DataPart,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    ReasoningPart,
    TextPart,
    Update,
    UriPart,
    UsagePart,
)
from afactors_agent_framework.codec import (
    UnmappedContent,
    UpdateMapper,
    from_af_content,
    from_af_messages,
    to_af_content,
    to_af_messages,
)

EVERY_PART = [
    TextPart("hello"),
    ReasoningPart("thinking"),
    DataPart(b"\x89PNG\x00\xff", "image/png", "photo.png"),
    UriPart("https://example.com/a.pdf", "application/pdf", "a.pdf"),
    UriPart("file-abc123", "image/*"),
    FunctionCallPart("c1", "add", '{"a": 1}'),
    FunctionResultPart("c1", "2"),
    UsagePart(10, 3),
]


@pytest.mark.parametrize("part", EVERY_PART, ids=lambda p: type(p).__name__)
def test_every_part_maps_to_agent_framework_and_back_unchanged(part: object) -> None:
    assert from_af_content(to_af_content(part)) == part  # type: ignore[arg-type]


def test_a_tool_using_assistant_turn_splits_into_agent_framework_messages_and_back() -> None:
    parts = (ReasoningPart("plan"), FunctionCallPart("c1", "add", "{}"), FunctionResultPart("c1", "5"), TextPart("5"))
    turn = Message("assistant", parts, name="adder")
    af = to_af_messages([Message("user", "add"), turn])
    assert [(m.role, [c.type for c in m.contents]) for m in af] == [
        ("user", ["text"]),
        ("assistant", ["text_reasoning", "function_call"]),
        ("tool", ["function_result"]),
        ("assistant", ["text"]),
    ]
    assert af[1].author_name == "adder" and af[2].author_name is None
    back = from_af_messages(af)
    assert [m.role for m in back] == ["user", "assistant", "tool", "assistant"]
    assert [p for m in back[1:] for p in m.contents] == list(turn.contents)


def test_messages_keep_role_and_author_and_an_empty_assistant_message_survives() -> None:
    af = to_af_messages([Message("system", "be brief"), Message("user", "hi", name="ann"), Message("assistant", ())])
    assert [(m.role, m.author_name, m.text) for m in af] == [("system", None, "be brief"), ("user", "ann", "hi"),
                                                             ("assistant", None, "")]  # fmt: skip


def test_contents_afactors_has_no_counterpart_for_are_left_out() -> None:
    with pytest.raises(UnmappedContent):
        from_af_content(Content.from_error(message="boom"))
    [message] = from_af_messages(
        [AFMessage("assistant", [Content.from_error(message="boom"), Content.from_text("ok")])]
    )
    assert message.contents == (TextPart("ok"),)


def test_function_arguments_and_results_that_are_not_text_become_json() -> None:
    assert from_af_content(Content.from_function_call("c", "f", arguments={"a": 1})) == FunctionCallPart(
        "c", "f", '{"a":1}'
    )
    assert from_af_content(Content.from_function_result("c", result=[1, 2])).result in ("[1,2]", "[1, 2]")


def test_the_update_mapper_streams_text_and_joins_reasoning_and_call_pieces() -> None:
    mapper = UpdateMapper()
    updates = [
        *mapper.add([Content.from_text_reasoning(text="I should "), Content.from_text_reasoning(text="add")]),
        *mapper.add([Content.from_function_call("c1", "add", arguments='{"a": ')]),
        *mapper.add([Content.from_function_call("c1", "", arguments="1}")]),
        *mapper.add([Content.from_usage({"input_token_count": 5, "output_token_count": 1})]),  # cumulative: skipped
        *mapper.add([Content.from_function_result("c1", result="1")]),
        *mapper.add([Content.from_text("the "), Content.from_text("sum")]),
        *mapper.add([Content.from_text_reasoning(text="done")]),
        *mapper.close(),
    ]
    assert updates == [
        Update(part=ReasoningPart("I should add")),
        Update(part=FunctionCallPart("c1", "add", '{"a": 1}')),
        Update(part=FunctionResultPart("c1", "1")),
        Update(delta="the "),
        Update(delta="sum"),
        Update(part=ReasoningPart("done")),
    ]
