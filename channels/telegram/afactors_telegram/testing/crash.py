"""kill -9 in the middle of a stream of updates, for crash tests: a `python -m afactors` process polls the fake Bot
API with a target that answers every message with ``"answer to <text>"``, is killed once a third of the answers
are out, and is started again on the same store until every chat has every answer and every update is confirmed.

What may be sent twice (the send-then-crash window) and how turns are counted differ by store; the callers check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from afactors_telegram.testing.fake import FakeBotApi
from afactors_telegram.testing.model import User

TARGET_MODULE = "telegram_crash_target"
TARGET = """
import trio

async def answer(messages):
    await trio.sleep(0.02)
    return "answer to " + messages[-1].text
"""


def expected_answers(chat: int, messages: int) -> list[str]:
    """The answers chat number `chat` gets to its messages ``c<chat>m0``, ``c<chat>m1``, ..., in order."""
    return [f"answer to c{chat}m{n}" for n in range(messages)]


async def start_polling_host(fake: FakeBotApi, folder: Path, store: Sequence[str]) -> trio.Process:
    """`python -m afactors` on `store` (``["--state-dir", dir]`` or ``["--store", url]``) polling `fake`, once
    its poller has made its first call; its output goes to ``folder/host.log``."""
    (folder / f"{TARGET_MODULE}.py").write_text(TARGET)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    argv = [
        sys.executable, "-m", "afactors", "--port", "0", *store, "--channel", "telegram",
        "--target", f"{TARGET_MODULE}:answer", "--telegram-token", fake.token, "--telegram-api-base", fake.api_base,
        "--telegram-chat-rate", "20", "--telegram-global-rate", "200",
    ]  # fmt: skip
    polls = fake.call_count("deleteWebhook")  # the poller's first call (getUpdates is recorded when it returns)
    with (folder / "host.log").open("ab") as log:
        process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    await fake.wait_until(lambda: fake.call_count("deleteWebhook") > polls, timeout=60)
    return process


async def kill_9_mid_stream(fake: FakeBotApi, folder: Path, store: Sequence[str], users: Sequence[User],
                            messages: int) -> float:  # fmt: skip
    """Each user sends `messages` messages; the host is killed with SIGKILL once a third are answered, and started
    again until all are answered (at least once) and confirmed. Returns the trio time of the kill."""
    host = await start_polling_host(fake, folder, store)
    try:
        for n in range(messages):
            for i, user in enumerate(users):
                fake.send_text(user, f"c{i}m{n}")
        total = len(users) * messages
        await fake.wait_until(lambda: fake.call_count("sendMessage") >= total // 3, timeout=60)
        host.kill()  # SIGKILL: no shutdown code runs, its sessions end with the process
        killed_at = trio.current_time()
        await host.wait()
        assert fake.call_count("sendMessage") < total, "the host answered everything before it was killed"
        host = await start_polling_host(fake, folder, store)

        def all_answered() -> bool:  # a reply sent again from the send-then-crash window does not count
            return all(len({m["text"] for m in fake.messages(user)}) == messages for user in users)

        await fake.wait_until(all_answered, timeout=60)
        await fake.wait_until(lambda: fake.pending_updates == 0, timeout=30)  # every update confirmed
        return killed_at
    finally:
        host.kill()
        await host.wait()
