"""The Telegram poller runs only on the host that leads the bot's polling on a PostgreSQL store, hands over when the
leader goes (closed, cut off, killed with kill -9), and no update is lost or turned into two turns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

import afactors
from afactors.store import Store
from afactors.store._pg_leader import ANSWER_WITHIN, CHECK, RETRY, pg_leadership
from afactors.store.pg_server import PgServer
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi, open_fake_bot_api
from afactors_telegram.testing.crash import expected_answers, kill_9_mid_stream
from tests.cluster.test_leadership import terminate_holder
from tests.telegram_fake import CHANNEL_LIMITS, FAKE_LIMITS

HANDOVER = RETRY + CHECK + ANSWER_WITHIN + 5.0  # seconds: the other side notices, then takes the role


def role(fake: FakeBotApi) -> str:
    return f"telegram/poll/{fake.bot.id}"


def answers(fake: FakeBotApi, user) -> list[str]:
    return [m["text"] for m in fake.messages(user)]


@pytest.mark.slow
async def test_only_the_leader_polls_and_the_role_moves_without_losing_updates(
    pg_server: PgServer, fake: FakeBotApi
) -> None:
    url = pg_server.new_store_url()
    channel = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS, poll_timeout=1.0,
                              stream=False)  # fmt: skip
    ann = fake.user("Ann")
    async with pg_leadership(url, role(fake)) as rival:
        assert await rival.try_acquire()  # another node leads
        async with afactors.open_host(channels=[channel], store=url, port=0, web_ui=False, durability="unsafe"):
            fake.send_text(ann, "first")
            await trio.sleep(1.0)
            assert fake.call_count("getUpdates") == fake.call_count("deleteWebhook") == 0
            assert fake.pending_updates == 1 and answers(fake, ann) == []
            await rival_leaves(pg_server, url, fake)
            await fake.wait_for_messages(ann, 1, timeout=HANDOVER)
            assert fake.call_count("deleteWebhook") == 1  # this host took the polling over

            # cut the leader's lock connection: it stops polling, another node leads, then leaves again
            async with pg_leadership(url, role(fake)) as second:
                assert await trio.to_thread.run_sync(terminate_holder, pg_server.url(), url, role(fake)) == 1
                with trio.fail_after(HANDOVER):
                    await second.acquire()
                await fake.wait_until(lambda: not fake.polling, timeout=HANDOVER)
                polls = fake.call_count("getUpdates")
                fake.send_text(ann, "second")
                await trio.sleep(1.5)  # longer than one poll_timeout: a poller still running would have asked
                assert fake.call_count("getUpdates") == polls and fake.pending_updates == 1
            await fake.wait_for_messages(ann, 2, timeout=HANDOVER)
            await fake.wait_until(lambda: fake.pending_updates == 0, timeout=HANDOVER)
            assert fake.call_count("deleteWebhook") == 2
    assert answers(fake, ann) == ["Turn 1. You said: first", "Turn 2. You said: second"]


async def rival_leaves(pg_server: PgServer, url: str, fake: FakeBotApi) -> None:
    """The rival node's session ends (as when its process exits)."""
    assert await trio.to_thread.run_sync(terminate_holder, pg_server.url(), url, role(fake)) == 1


CHATS = 10
MESSAGES = 4


@pytest.mark.slow
async def test_a_leader_killed_with_kill_9_loses_no_update_and_the_next_resumes(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.new_store_url()
    async with open_fake_bot_api(rate_limits=FAKE_LIMITS) as fake:
        users = [fake.user(f"User{i}") for i in range(CHATS)]
        await kill_9_mid_stream(fake, tmp_path, ["--store", url], users, MESSAGES)  # the next leader: same schema
        for i, user in enumerate(users):
            assert list(dict.fromkeys(answers(fake, user))) == expected_answers(i, MESSAGES)
    async with Store.open(url) as store:
        turns = Counter(m.text for _, turn in store.scan("turns") for m in turn.input)
    assert turns == Counter(f"c{i}m{n}" for i in range(CHATS) for n in range(MESSAGES))  # each update: one turn
