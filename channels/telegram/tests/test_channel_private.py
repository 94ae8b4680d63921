"""Private chats through the real channel, a real host and the fake Bot API over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from afactors.host import HookRejected
from afactors.model import DataPart, Envelope, TurnContext, Update
from afactors_telegram import ChatCommand, CommandCall
from afactors_telegram.testing import FakeBotApi, make_png

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py


async def test_private_chat_keeps_its_conversation_across_turns(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve():
        fake.send_text(alice, "remember that the sky is green")
        [first] = await fake.wait_for_messages(alice, 1)
        fake.send_text(alice, "what do you remember?")
        messages = await fake.wait_for_messages(alice, 2)
    assert first["text"] == "Turn 1. I will remember that the sky is green."
    assert messages[1]["text"] == "Turn 2. I remember: the sky is green."
    assert "reply_to_message" not in messages[1]  # private answers are no quote-replies


async def test_private_chat_keeps_its_conversation_across_a_restart(
    fake: FakeBotApi, serve: Serve, eventually: Callable[..., Any]
) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    async with serve() as (host, _):
        fake.send_text(alice, "remember that tea is hot")
        await fake.wait_for_messages(alice, 1)
        await eventually(lambda: host.store.count("outbox") == 0)  # the host has recorded the delivery
    async with serve():
        fake.send_text(alice, "what do you remember?")
        fake.send_text(bob, "what do you remember?")
        messages = await fake.wait_for_messages(alice, 2)
        [for_bob] = await fake.wait_for_messages(bob, 1)
    assert messages[1]["text"] == "Turn 2. I remember: tea is hot."
    assert for_bob["text"] == "Turn 1. I don't remember anything yet."


async def test_start_and_help_are_answered_by_the_channel(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve():
        fake.send_text(alice, "/start")
        fake.send_text(alice, "/help")
        fake.send_text(alice, "hello")
        start, help_, answer = await fake.wait_for_messages(alice, 3)
    assert start["text"].startswith("Hello!")
    assert "/new - Start a new conversation" in help_["text"]
    assert answer["text"] == "Turn 1. You said: hello"  # /start and /help never reached the agent
    assert [c["command"] for c in fake.commands()] == ["start", "new", "help", "link", "unlink", "login"]


async def test_new_starts_a_fresh_conversation_and_keeps_the_old_one(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve() as (host, channel):
        fake.send_text(alice, "remember that the old one matters")
        fake.send_text(alice, "/new")
        fake.send_text(alice, "what do you remember?")
        _, new, answer = await fake.wait_for_messages(alice, 3)
        person = host.identity.lookup("default", channel.name, str(alice.id))  # a private chat follows its user
        old_turns = host.store.scan("turns", f"default/id:{person.key}/")
    assert new["text"] == "Started a new conversation."
    assert answer["text"] == "Turn 1. I don't remember anything yet."
    assert [t.input[0].text for _, t in old_turns] == ["remember that the old one matters"]


async def test_unknown_commands_go_to_the_agent_and_registered_ones_do_not(fake: FakeBotApi, serve: Serve) -> None:
    calls: list[CommandCall] = []

    async def weather(call: CommandCall) -> str:
        calls.append(call)
        return f"Sunny in {call.args}"

    alice = fake.user("Alice")
    async with serve(commands=[ChatCommand("weather", "The weather", weather)]):
        fake.send_text(alice, "/weather Paris")
        fake.send_text(alice, "/translate hola")
        sunny, translated = await fake.wait_for_messages(alice, 2)
    assert sunny["text"] == "Sunny in Paris"
    assert translated["text"] == "Turn 1. You said: /translate hola"
    assert calls[0].user_id == alice.id and calls[0].chat_type == "private"
    assert calls[0].conversation.conversation.endswith(f":{alice.id}")
    assert fake.commands()[-1] == {"command": "weather", "description": "The weather"}


async def test_a_failing_command_handler_gets_a_short_apology(fake: FakeBotApi, serve: Serve) -> None:
    async def broken(call: CommandCall) -> str:
        raise RuntimeError("secret internals")

    alice = fake.user("Alice")
    async with serve(commands=[ChatCommand("broken", "Fails", broken)]):
        fake.send_text(alice, "/broken")
        [sorry] = await fake.wait_for_messages(alice, 1)
    assert sorry["text"] == "Sorry, /broken failed."


class Describe:
    """A target that answers with what the last user message was made of."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        parts = []
        for part in ctx.messages[-1].contents:
            if isinstance(part, DataPart):
                parts.append(f"{part.media_type} {len(part.data)} bytes {part.name}")
            else:
                parts.append(f"{type(part).__name__}: {getattr(part, 'text', '')}")
        yield Update(delta="; ".join(parts))


async def test_photos_documents_and_voice_reach_the_target_as_parts(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    png = make_png(4, 3)
    async with serve(Describe()):
        fake.send_photo(alice, png, caption="a chart")
        fake.send_document(alice, b"%PDF-1.4 data", file_name="report.pdf", mime_type="application/pdf")
        fake.send_voice(alice, b"OggS voice")
        photo, document, voice = await fake.wait_for_messages(alice, 3)
    assert photo["text"].startswith("TextPart: a chart; image/png")
    assert f"{len(png)} bytes" in photo["text"]
    assert document["text"] == "application/pdf 13 bytes report.pdf"
    assert voice["text"].startswith("audio/ogg 10 bytes")


async def test_an_oversized_file_becomes_a_note(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve(Describe(), max_file_bytes=5):
        fake.send_document(alice, b"0123456789", file_name="big.bin")
        [note] = await fake.wait_for_messages(alice, 1)
    assert note["text"].startswith("TextPart: [document 'big.bin' not attached")


async def test_long_replies_are_split_at_line_boundaries(fake: FakeBotApi, serve: Serve) -> None:
    lines = [f"line {i:05d} " + "x" * 80 for i in range(120)]  # about 11,000 characters

    async def long_answer(messages: list[Any]) -> str:
        return "\n".join(lines)

    alice = fake.user("Alice")
    async with serve(long_answer):
        fake.send_text(alice, "go")
        sent = await fake.wait_for_messages(alice, 3)
    assert len(sent) == 3
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert "\n".join(m["text"] for m in sent) == "\n".join(lines)


async def test_formatting_is_sent_as_html_and_falls_back_to_plain_text(fake: FakeBotApi, serve: Serve) -> None:
    async def bold(messages: list[Any]) -> str:
        return "**important** <tag>"

    alice = fake.user("Alice")
    async with serve(bold):
        fake.send_text(alice, "first")
        [first] = await fake.wait_for_messages(alice, 1)
        fake.force_error(400, "Bad Request: can't parse entities: unsupported start tag", method="sendMessage")
        fake.send_text(alice, "second")
        second = (await fake.wait_for_messages(alice, 2))[1]
    assert first["text"] == "important <tag>"
    assert first["entities"] == [{"type": "bold", "offset": 0, "length": 9}]
    assert second["text"] == "**important** <tag>" and "entities" not in second


async def test_images_in_a_reply_go_by_send_photo(fake: FakeBotApi, serve: Serve) -> None:
    png = make_png(2, 2)

    class Painter:
        async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
            yield Update(delta="Here it is")
            yield Update(part=DataPart(png, "image/png", "dot.png"))

    alice = fake.user("Alice")
    async with serve(Painter()):
        fake.send_text(alice, "draw")
        text, photo = await fake.wait_for_messages(alice, 2)
    assert text["text"] == "Here it is"
    assert photo["photo"][0]["width"] == 2


async def test_a_failed_turn_tells_the_user_without_internals(fake: FakeBotApi, serve: Serve) -> None:
    async def broken(messages: list[Any]) -> str:
        raise RuntimeError("database password is hunter2")

    alice = fake.user("Alice")
    async with serve(broken):
        fake.send_text(alice, "hi")
        [sorry] = await fake.wait_for_messages(alice, 1, timeout=15)
    assert sorry["text"].startswith("Sorry, I could not answer that")
    assert "hunter2" not in sorry["text"]


async def test_a_blocked_chat_is_marked_inactive_and_comes_back_when_the_user_writes(
    fake: FakeBotApi, serve: Serve, eventually: Callable[..., Any]
) -> None:
    gate = trio.Event()

    async def held(messages: list[Any]) -> str:
        await gate.wait()
        return f"answer to {messages[-1].text}"

    alice, bob = fake.user("Alice"), fake.user("Bob")
    async with serve(held) as (_, channel):
        fake.send_text(alice, "one")
        await fake.wait_until(lambda: bool(fake.chat_actions(alice)))
        fake.block(alice)
        gate.set()
        await eventually(lambda: channel.inactive(alice.id))
        assert [c.status for c in fake.calls("sendMessage")] == [403]
        fake.send_text(bob, "still here?")  # other chats are unaffected
        await fake.wait_for_messages(bob, 1)
        fake.unblock(alice)
        fake.send_text(alice, "two")
        [answer] = await fake.wait_for_messages(alice, 1)
        assert not channel.inactive(alice.id)
    assert answer["text"] == "answer to two"


async def test_a_flood_wait_is_waited_out_exactly(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    fake.private_chat(alice)
    async with serve():
        fake.force_flood_wait(1, chat=alice, method="sendMessage")
        fake.send_text(alice, "hi")
        [answer] = await fake.wait_for_messages(alice, 1)
    refused, sent = fake.calls("sendMessage")
    assert refused.status == 429 and sent.status == 200
    assert 1.0 <= sent.at - refused.at < 1.5
    assert fake.rate_limit_violations == 0
    assert answer["text"] == "Turn 1. You said: hi"


async def test_a_run_hook_refusal_is_told_to_the_user(fake: FakeBotApi, serve: Serve) -> None:
    def no_secrets(envelope: Envelope) -> Envelope:
        if "password" in envelope.input[0].text:
            raise HookRejected("Please do not send passwords here.")
        return envelope

    alice = fake.user("Alice")
    async with serve(run_hook=no_secrets):
        fake.send_text(alice, "my password is hunter2")
        fake.send_text(alice, "hello")
        refused, answered = await fake.wait_for_messages(alice, 2)
    assert refused["text"] == "Please do not send passwords here."
    assert answered["text"] == "Turn 1. You said: hello"


async def test_with_the_reject_policy_a_busy_conversation_says_so(fake: FakeBotApi, serve: Serve) -> None:
    gate = trio.Event()

    async def held(messages: list[Any]) -> str:
        await gate.wait()
        return "done"

    alice = fake.user("Alice")
    async with serve(held, busy_policy="reject"):
        fake.send_text(alice, "first")
        fake.send_text(alice, "second")
        [busy] = await fake.wait_for_messages(alice, 1)
        gate.set()
        _, done = await fake.wait_for_messages(alice, 2)
    assert busy["text"].startswith("I am still answering your previous message")
    assert done["text"] == "done"


async def test_a_full_mailbox_holds_up_only_its_own_chat(fake: FakeBotApi, serve: Serve) -> None:
    gate = trio.Event()

    async def slow_for_alice(messages: list[Any]) -> str:
        if messages[-1].text.startswith("alice"):
            await gate.wait()
        return "answer to " + messages[-1].text

    alice, bob = fake.user("Alice"), fake.user("Bob")
    async with serve(slow_for_alice, host_kwargs={"mailbox_size": 1}):
        for n in range(6):  # one runs, one waits in the mailbox, the rest wait in the channel
            fake.send_text(alice, f"alice {n}")
        fake.send_text(bob, "bob")
        [for_bob] = await fake.wait_for_messages(bob, 1)
        assert not fake.messages(alice)
        gate.set()
        answers = await fake.wait_for_messages(alice, 6)
    assert for_bob["text"] == "answer to bob"
    assert [m["text"] for m in answers] == [f"answer to alice {n}" for n in range(6)]
