"""kill -9 of a host process with updates in flight: after a restart every update is answered, none twice
except in the documented send-then-crash window."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from afactors_telegram.testing import RateLimits, open_fake_bot_api
from afactors_telegram.testing.crash import expected_answers, kill_9_mid_stream

CHATS = 20
MESSAGES = 5
WINDOW = 0.5  # seconds around the kill in which an answer may have been sent but not marked delivered


@pytest.mark.slow
async def test_kill_9_with_updates_in_flight_loses_nothing(tmp_path: Path) -> None:
    limits = RateLimits(per_chat_per_second=30.0, per_chat_burst=5, global_per_second=300.0, global_burst=50)
    async with open_fake_bot_api(rate_limits=limits) as fake:
        users = [fake.user(f"User{i}") for i in range(CHATS)]
        killed_at = await kill_9_mid_stream(fake, tmp_path, ["--state-dir", str(tmp_path / "state")], users, MESSAGES)

        sent = [c for c in fake.calls("sendMessage") if c.ok]
        for i, user in enumerate(users):
            texts = [m["text"] for m in fake.messages(user)]
            first_seen = list(dict.fromkeys(texts))
            assert first_seen == expected_answers(i, MESSAGES), texts  # all, in order
        copies = Counter((c.params["chat_id"], c.params["text"]) for c in sent)
        for (chat_id, text), count in copies.items():
            if count == 1:
                continue
            assert count == 2, (chat_id, text, count)
            first = next(c for c in sent if (c.params["chat_id"], c.params["text"]) == (chat_id, text))
            assert abs(first.at - killed_at) <= WINDOW, (text, first.at, killed_at)  # sent just before the kill
        assert fake.rate_limit_violations == 0
