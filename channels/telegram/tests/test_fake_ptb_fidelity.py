"""Fidelity: python-telegram-bot 22.8 (asyncio) parses everything the fake returns, and maps its errors.

The fake runs under trio in a background thread; PTB runs under asyncio in the test thread. Every parsed
object is checked for ``api_kwargs`` (fields PTB does not know), so a misspelt or invented field fails.
"""

import asyncio
import datetime as dtm
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import telegram
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, TelegramObject
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter

from afactors_telegram.testing import FakeBotApi, ManualClock, RateLimits, make_png
from afactors_telegram.testing.threaded import ThreadedFake, fake_bot_api_in_thread


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # opt in to PTB's future types; avoids its deprecation warnings


@pytest.fixture
def handle() -> Iterator[ThreadedFake]:
    with fake_bot_api_in_thread(rate_limits=None) as handle:
        yield handle


def _unknown_fields(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, TelegramObject):
        if value.api_kwargs:
            found.append(f"{path or type(value).__name__}: {dict(value.api_kwargs)}")
        for name, attribute in value._get_attrs(recursive=False).items():
            found += _unknown_fields(attribute, f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += _unknown_fields(item, f"{path}[{index}]")
    return found


def _known(value: Any) -> Any:
    assert _unknown_fields(value) == []
    return value


def _with_bot(handle: ThreadedFake, scenario: Callable[[telegram.Bot], Awaitable[None]], token: str = "") -> None:
    async def main() -> None:
        bot = telegram.Bot(token or handle.token, base_url=handle.base_url, base_file_url=handle.base_file_url)
        async with bot:
            await scenario(bot)

    asyncio.run(main())


def test_get_me(handle: ThreadedFake) -> None:
    async def scenario(bot: telegram.Bot) -> None:
        me = _known(await bot.get_me())
        assert (me.username, me.is_bot, me.can_join_groups) == ("afactors_test_bot", True, True)

    _with_bot(handle, scenario)


def test_every_injected_update_kind_parses(handle: ThreadedFake) -> None:
    def inject(fake: FakeBotApi) -> dict[str, int]:
        ann = fake.user("Ann", username="ann", last_name="Lee")
        group, forum = fake.group("Team"), fake.supergroup("Forum", forum=True)
        fake.send_text(ann, "/start")
        fake.send_text(group, f"{fake.mention} hi https://example.com #tag", sender=ann)
        topic = fake.create_topic(forum, "Ideas", creator=ann)
        fake.send_text(forum, "in topic", sender=ann, thread_id=topic)
        fake.send_photo(ann, make_png(4, 3), caption="pic")
        fake.send_document(group, b"doc", file_name="a.txt", mime_type="text/plain", sender=ann)
        sent = fake.send_voice(ann, b"OggS")
        fake.edit_text(ann, fake.send_text(ann, "typo")["message_id"], "fixed")
        fake.migrate_to_supergroup(group, by=ann)
        return {"sent": sent["message_id"], "topic": topic}

    ids = handle.run_sync(inject)

    async def scenario(bot: telegram.Bot) -> None:
        ann = ids["sent"] and (await bot.get_updates(timeout=0))[0].message.chat.id
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="y")]])
        asked = await bot.send_message(ann, "Sure?", reply_markup=keyboard)
        query_id = handle.run_sync(lambda fake: fake.press_button(ann, asked.message_id, "y"))
        handle.run_sync(lambda fake: fake.block(ann))
        updates = await bot.get_updates(timeout=0)
        for update in updates:
            _known(update)
        kinds = [update.effective_message and update.effective_message.text for update in updates]
        assert kinds[:2] == ["/start", "@afactors_test_bot hi https://example.com #tag"]
        assert updates[0].message.entities[0].type == "bot_command"
        assert [e.type for e in updates[1].message.entities] == ["mention", "url", "hashtag"]
        created, in_topic = updates[2].message, updates[3].message
        assert created.forum_topic_created.name == "Ideas"
        assert (in_topic.message_thread_id, in_topic.is_topic_message) == (ids["topic"], True)
        assert updates[4].message.photo[-1].width == 4
        assert updates[5].message.document.file_name == "a.txt"
        assert updates[6].message.voice.duration == dtm.timedelta(seconds=1)
        assert updates[8].edited_message.text == "fixed"
        assert updates[8].edited_message.edit_date is not None
        assert updates[9].message.migrate_to_chat_id == updates[10].message.chat.id
        assert (updates[11].callback_query.id, updates[11].callback_query.data) == (query_id, "y")
        assert updates[11].callback_query.message.reply_markup == keyboard
        assert await bot.answer_callback_query(query_id, text="ok") is True
        assert updates[12].my_chat_member.new_chat_member.status == "kicked"
        assert len(updates) == 13

    _with_bot(handle, scenario)


def test_sending_methods_parse(handle: ThreadedFake) -> None:
    def setup(fake: FakeBotApi) -> dict[str, int]:
        ann = fake.user("Ann")
        forum = fake.supergroup("Forum", forum=True)
        return {"chat": fake.private_chat(ann).id, "asked": fake.send_text(ann, "q")["message_id"],
                "forum": forum.id, "topic": fake.create_topic(forum, "T", creator=ann)}  # fmt: skip

    ids = handle.run_sync(setup)

    async def scenario(bot: telegram.Bot) -> None:
        chat = ids["chat"]
        assert await bot.send_chat_action(chat, ChatAction.TYPING) is True
        assert await bot.send_message_draft(chat, draft_id=3, text="Thinking") is True
        sent = _known(await bot.send_message(chat, "*hi* there", parse_mode=ParseMode.MARKDOWN_V2,
                                             reply_parameters=ReplyParameters(ids["asked"])))  # fmt: skip
        assert (sent.text, sent.entities[0].type, sent.reply_to_message.text) == ("hi there", "bold", "q")
        assert sent.from_user.is_bot and sent.chat.type == "private"
        edited = _known(await bot.edit_message_text("final", chat_id=chat, message_id=sent.message_id))
        assert edited.text == "final" and edited.edit_date is not None
        in_topic = _known(await bot.send_message(ids["forum"], "t", message_thread_id=ids["topic"]))
        assert in_topic.message_thread_id == ids["topic"] and in_topic.reply_to_message.forum_topic_created
        assert await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("new", "New session")])
        assert [c.command for c in _known(await bot.get_my_commands())] == ["start", "new"]
        assert await bot.delete_message(chat, sent.message_id) is True

    _with_bot(handle, scenario)
    assert [d.text for d in handle.run_sync(lambda fake: fake.drafts())] == ["Thinking"]


def test_photos_and_files_round_trip(handle: ThreadedFake) -> None:
    chat = handle.run_sync(lambda fake: fake.private_chat(fake.user("Ann")).id)
    image = make_png(6, 2)

    async def scenario(bot: telegram.Bot) -> None:
        sent = _known(await bot.send_photo(chat, photo=image, caption="<i>pic</i>", parse_mode=ParseMode.HTML))
        assert sent.caption == "pic" and sent.caption_entities[0].type == "italic"
        largest = sent.photo[-1]
        assert (largest.width, largest.height, largest.file_size) == (6, 2, len(image))
        file = _known(await bot.get_file(largest.file_id))
        assert bytes(await file.download_as_bytearray()) == image
        again = _known(await bot.send_photo(chat, photo=largest.file_id))
        assert again.photo[-1].file_unique_id == largest.file_unique_id

    _with_bot(handle, scenario)


def test_webhook_methods_parse(handle: ThreadedFake) -> None:
    handle.run_sync(lambda fake: fake.send_text(fake.user("Ann"), "pending"))

    async def scenario(bot: telegram.Bot) -> None:
        assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="tok", max_connections=5) is True
        info = _known(await bot.get_webhook_info())
        assert (info.url, info.max_connections, info.pending_update_count) == ("http://127.0.0.1:9/hook", 5, 1)
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        assert await bot.delete_webhook(drop_pending_updates=True) is True
        info = _known(await bot.get_webhook_info())
        assert (info.url, info.pending_update_count) == ("", 0)

    _with_bot(handle, scenario)


def test_errors_map_to_ptb_exceptions(handle: ThreadedFake) -> None:
    def setup(fake: FakeBotApi) -> dict[str, int]:
        ann, bob = fake.user("Ann"), fake.user("Bob")
        chat, blocked = fake.private_chat(ann), fake.private_chat(bob)
        fake.block(blocked)
        group = fake.group("Old")
        new = fake.migrate_to_supergroup(group, by=ann)
        fake.force_flood_wait(9, chat=chat, method="sendPhoto")
        fake.force_error(502, "Bad Gateway", chat=chat, method="sendChatAction")
        return {"chat": chat.id, "blocked": blocked.id, "group": group.id, "new": new.id}

    ids = handle.run_sync(setup)

    async def scenario(bot: telegram.Bot) -> None:
        chat = ids["chat"]
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(chat, "x" * 4097)
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(chat, "1.0", parse_mode=ParseMode.MARKDOWN_V2)
        sent = await bot.send_message(chat, "same")
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text("same", chat_id=chat, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(424242, "x")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(ids["blocked"], "x")
        with pytest.raises(ChatMigrated) as migrated:
            await bot.send_message(ids["group"], "x")
        assert migrated.value.new_chat_id == ids["new"]
        with pytest.raises(RetryAfter) as flood:
            await bot.send_photo(chat, photo=make_png())
        assert flood.value.retry_after == dtm.timedelta(seconds=9)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_chat_action(chat, ChatAction.TYPING)

    _with_bot(handle, scenario)

    async def wrong_token(bot: telegram.Bot) -> None:
        raise AssertionError("initialize should have failed")

    with pytest.raises(InvalidToken):
        _with_bot(handle, wrong_token, token="999:WRONG")


def test_real_rate_limits_surface_as_retry_after() -> None:
    with fake_bot_api_in_thread(clock=ManualClock(), rate_limits=RateLimits(per_chat_burst=1)) as handle:
        chat = handle.run_sync(lambda fake: fake.private_chat(fake.user("Ann")).id)

        async def scenario(bot: telegram.Bot) -> None:
            await bot.send_message(chat, "one")
            with pytest.raises(RetryAfter) as flood:
                await bot.send_message(chat, "two")
            assert flood.value.retry_after == dtm.timedelta(seconds=1)

        _with_bot(handle, scenario)
        assert handle.run_sync(lambda fake: fake.rate_limit_violations) == 1
