"""The fake keeps up with 1,000 chats x 5 messages sent concurrently (correctness, not timing)."""

import httpx
import pytest
import trio

from afactors_telegram.testing import open_fake_bot_api

CHATS, PER_CHAT, SENDERS = 1000, 5, 8  # more httpx connections only slow the client (httpcore's pool)


@pytest.mark.slow
async def test_thousand_chats_five_messages_each() -> None:
    async with open_fake_bot_api(rate_limits=None) as fake, \
            httpx.AsyncClient(limits=httpx.Limits(max_connections=SENDERS)) as client:  # fmt: skip
        users = [fake.user(f"U{i}") for i in range(CHATS)]
        for user in users:
            fake.send_text(user, "hi")
        jobs_in, jobs_out = trio.open_memory_channel[tuple[int, int]](CHATS * PER_CHAT)

        async def sender(jobs: trio.MemoryReceiveChannel[tuple[int, int]]) -> None:
            async for chat_id, n in jobs:
                answer = await client.post(f"{fake.bot_url}/sendMessage", json={"chat_id": chat_id, "text": f"m{n}"})
                assert answer.status_code == 200, answer.text

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for _ in range(SENDERS):
                    nursery.start_soon(sender, jobs_out.clone())
                jobs_out.close()
                async with jobs_in:
                    offset = 0
                    while offset < CHATS:
                        poll = {"offset": offset + 1, "timeout": 1}
                        updates = (await client.post(f"{fake.bot_url}/getUpdates", json=poll)).json()["result"]
                        for update in updates:
                            for n in range(PER_CHAT):
                                jobs_in.send_nowait((update["message"]["chat"]["id"], n))
                            offset = update["update_id"]
        assert sorted(m["text"] for m in fake.messages(users[-1])) == [f"m{n}" for n in range(PER_CHAT)]
        assert sorted(len(fake.messages(user)) for user in users) == [PER_CHAT] * CHATS
        assert len(fake.calls("sendMessage")) == CHATS * PER_CHAT
