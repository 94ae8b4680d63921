"""Timers answer through response targets: a reminder set in a turn answers where that turn's answers went
(resolved again when it fires), and `POST /v1/timers` takes a `response_target` and the `user` it acts for.
Real channels on one host: Telegram (fake Bot API), Responses (the `openai` SDK) and the HTTP timers route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from afactors.model import TurnContext, Update
from afactors_telegram.testing import FakeBotApi
from tests.test_delivery_targets import ask, link, serving


class Reminders:
    """ "remind <seconds> <text>" sets a reminder (answering where this turn answers); a timer turn says it; anything
    else is echoed."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if ctx.kind == "timer":
            assert ctx.timer is not None and ctx.identity is not None
            yield Update(delta=f"Reminder for {ctx.identity.user_id}: {ctx.timer.payload['text']}")
            return
        command, *words = ctx.messages[-1].text.split()
        if command != "remind":
            yield Update(delta=ctx.messages[-1].text)
            return
        seconds, *text = words
        timer = ctx.timers.after(float(seconds), payload={"text": " ".join(text)})
        yield Update(delta=f"Reminder {timer.id} set.")


async def test_a_reminder_answers_where_the_turn_that_set_it_answered(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s", agent=Reminders()) as s:
        await link(fake, s.http, alice, "responses", "alice")
        response = await ask(s.sdk, "alice", "remind 0.3 stretch", {"kind": "channels", "channels": ["telegram"]})
        assert response.output_text.startswith("Reminder tmr_")
        with trio.fail_after(10):
            *_, set_note, reminder = await fake.wait_for_messages(alice, 4)
        pending = s.host.timers.count()
    assert set_note["text"].startswith("Reminder tmr_")  # the turn's own answer, routed to Telegram
    assert reminder["text"] == "Reminder for alice: stretch"  # the timer turn acts for whom set it
    assert pending == 0


async def test_http_timer_with_a_response_target_and_user(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s", agent=Reminders()) as s:
        await link(fake, s.http, alice, "responses", "alice")
        body = {"conversation": "c1", "after": 0.2, "payload": {"text": "drink water"},
                "response_target": "all_linked", "user": {"channel": "responses", "user": "alice"}}  # fmt: skip
        answer = await s.http.post("/v1/timers", json=body)
        assert answer.status_code == 201, answer.text
        shown = answer.json()
        with trio.fail_after(10):
            *_, reminder = await fake.wait_for_messages(alice, 3)
    assert shown["response_target"]["kind"] == "all_linked"
    assert shown["user"] == {"channel": "responses", "user": "alice"}
    assert reminder["text"] == "Reminder for alice: drink water"


@pytest.mark.parametrize(
    ("extra", "status", "code", "message"),
    [
        ({"response_target": "sideways"}, 400, "invalid_response_target", "kind"),
        ({"response_target": "all_linked"}, 400, "sender_required", "needs a sender"),
        ({"response_target": "all_linked", "user": {"channel": "responses", "user": "nobody"}}, 404,
         "unknown_identity", "unknown identity"),
        ({"response_target": {"kind": "channels", "channels": ["fax"]}, "user": {"channel": "responses",
          "user": "alice"}}, 400, "unknown_channel", "fax"),
        ({"user": "alice"}, 400, "invalid_request", "'user' must be an object"),
    ],
)  # fmt: skip
async def test_http_timer_bad_targets_are_refused_at_schedule_time(
    fake: FakeBotApi, tmp_path: Path, extra: dict[str, Any], status: int, code: str, message: str
) -> None:
    async with serving(fake, tmp_path / "s", agent=Reminders()) as s:
        await s.sdk.responses.create(model="m", input="remind 60 hello", safety_identifier="alice")  # alice is known
        answer = await s.http.post("/v1/timers", json={"conversation": "c1", "after": 5, **extra})
        count = s.host.timers.count()
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and message in error["message"], error
    assert count == 1  # only the reminder set by the turn: nothing was scheduled by the refused request
