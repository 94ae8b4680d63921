"""The fake's door for sends: held sends wait unexecuted; released they run, or are dropped with 502."""

from __future__ import annotations

import httpx
import trio

from afactors_telegram.testing import open_fake_bot_api


async def test_held_sends_wait_then_run_or_are_dropped() -> None:
    async with open_fake_bot_api(rate_limits=None) as fake, httpx.AsyncClient(timeout=10) as http:
        ann = fake.private_chat(fake.user("Ann"))
        answers: list[int] = []

        async def send(text: str) -> None:
            answer = await http.post(f"{fake.bot_url}/sendMessage", json={"chat_id": ann.id, "text": text})
            answers.append(answer.status_code)

        fake.hold_sends()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "kept")
            await fake.wait_until(lambda: fake.held_sends == 1)
            assert fake.messages(ann) == []  # held: not executed
            fake.release_sends()
        fake.hold_sends()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "dropped")
            await fake.wait_until(lambda: fake.held_sends == 1)
            fake.release_sends(drop=True)
        await send("late")  # still dropped until the door opens again
        fake.release_sends()
        await send("after")
    assert answers == [200, 502, 502, 200]
    assert [m["text"] for m in fake.messages(ann)] == ["kept", "after"]
