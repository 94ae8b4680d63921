"""Pure tests: what a finished reply is sent as (text split and formatted, photos, failures)."""

from __future__ import annotations

from afactors.model import DataPart, ErrorInfo, Message, Reply, TextPart, UriPart
from afactors_telegram.outbound import CANCELLED, NO_RESPONSE, PhotoOut, TextOut, failure_text, plan_reply

PNG = b"\x89PNG-bytes"


def reply(*parts: object, **kw: object) -> Reply:
    return Reply(messages=(Message("assistant", tuple(parts)),), **kw)  # type: ignore[arg-type]


def test_text_is_formatted() -> None:
    assert plan_reply(reply(TextPart("**hi**")), "markdown") == [TextOut("**hi**", "<b>hi</b>")]
    assert plan_reply(reply(TextPart("**hi**")), "plain") == [TextOut("**hi**")]


def test_long_text_becomes_several_messages_then_the_images() -> None:
    plan = plan_reply(reply(TextPart("line\n" * 2000), DataPart(PNG, "image/png", "chart.png")), "plain")
    assert [type(p) for p in plan] == [TextOut, TextOut, TextOut, PhotoOut]
    assert plan[-1] == PhotoOut(data=PNG, media_type="image/png", name="chart.png")


def test_images_by_url_and_non_images() -> None:
    plan = plan_reply(
        reply(
            UriPart("https://example.com/cat.jpg", "image/jpeg"),
            UriPart("file:///etc/passwd", "image/jpeg"),
            DataPart(b"%PDF", "application/pdf"),
        ),
        "markdown",
    )
    assert plan == [PhotoOut(url="https://example.com/cat.jpg", media_type="image/jpeg")]


def test_only_assistant_images_are_sent() -> None:
    turn = Reply(messages=(Message("tool", (DataPart(PNG, "image/png"),)), Message("assistant", "ok")))
    assert plan_reply(turn, "plain") == [TextOut("ok")]


def test_empty_failed_and_cancelled_replies_still_say_something() -> None:
    assert plan_reply(Reply(), "plain") == [TextOut(NO_RESPONSE)]
    failed = Reply(status="failed", error=ErrorInfo("agent_error", "RuntimeError: secret detail"))
    [message] = plan_reply(failed, "markdown")
    assert message == TextOut(failure_text("agent_error")) and "secret" not in message.text
    assert plan_reply(Reply(status="cancelled"), "plain") == [TextOut(CANCELLED)]
