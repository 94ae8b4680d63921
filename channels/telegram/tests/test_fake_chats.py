"""What users do and what the bot sees and sends, through the fake over loopback HTTP."""

from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

from afactors_telegram.testing import FakeBotApi, make_png, open_fake_bot_api


@attrs.frozen
class Bot:
    """A minimal raw Bot API client for these tests."""

    fake: FakeBotApi
    client: httpx.AsyncClient

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return (await self.client.post(f"{self.fake.bot_url}/{method}", json=params)).json()

    async def result(self, method: str, **params: Any) -> Any:
        body = await self.call(method, **params)
        assert body["ok"], body
        return body["result"]

    async def updates(self) -> list[dict[str, Any]]:
        found = await self.result("getUpdates")
        if found:
            await self.call("getUpdates", offset=found[-1]["update_id"] + 1)
        return found


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with open_fake_bot_api(rate_limits=None) as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[Bot]:
    async with httpx.AsyncClient() as client:
        yield Bot(fake, client)


async def test_group_mentions_replies_and_commands_carry_entities(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann", username="ann")
    group = fake.group("Team")
    fake.send_text(group, f"hey {fake.mention} what's up", sender=ann)
    fake.send_text(group, f"/new@{fake.bot.username} please", sender=ann)
    fake.send_text(group, "/help@otherbot", sender=ann)
    posted = await bot.result("sendMessage", chat_id=group.id, text="hello group")
    fake.send_text(group, "thanks", sender=ann, reply_to=posted["message_id"])
    mention, command, other, reply = [u["message"] for u in await bot.updates()]
    assert mention["entities"] == [{"type": "mention", "offset": 4, "length": len(fake.mention)}]
    assert mention["chat"] == {"id": group.id, "title": "Team", "type": "group"}
    assert mention["from"] == {"id": ann.id, "is_bot": False, "first_name": "Ann", "username": "ann",
                               "language_code": "en"}  # fmt: skip
    assert command["entities"] == [{"type": "bot_command", "offset": 0, "length": 22}]
    assert other["entities"] == [{"type": "bot_command", "offset": 0, "length": 14}]
    assert reply["reply_to_message"]["from"]["id"] == fake.bot.id
    assert reply["reply_to_message"]["text"] == "hello group"
    assert "reply_to_message" not in reply["reply_to_message"]


async def test_text_mentions_can_be_given_explicitly(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    group = fake.supergroup("Big")
    entity = {"type": "text_mention", "offset": 0, "length": 3, "user": fake.bot.wire()}
    message = fake.send_text(group, "Bot, hi", sender=ann, entities=[entity])
    assert message["entities"] == [entity]


async def test_forum_topics_thread_messages_both_ways(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    forum = fake.supergroup("Forum", forum=True)
    topic = fake.create_topic(forum, "Ideas", creator=ann)
    fake.send_text(forum, "in the topic", sender=ann, thread_id=topic)
    fake.send_text(forum, "in General", sender=ann)
    created, in_topic, general = [u["message"] for u in await bot.updates()]
    assert created["forum_topic_created"] == {"name": "Ideas", "icon_color": 7322096}
    assert (created["message_id"], created["message_thread_id"], created["is_topic_message"]) == (topic, topic, True)
    assert in_topic["message_thread_id"] == topic and in_topic["is_topic_message"] is True
    assert in_topic["reply_to_message"]["forum_topic_created"]["name"] == "Ideas"
    assert in_topic["chat"]["is_forum"] is True
    assert "message_thread_id" not in general and "is_topic_message" not in general
    sent = await bot.result("sendMessage", chat_id=forum.id, text="answer", message_thread_id=topic)
    assert (sent["message_thread_id"], sent["is_topic_message"]) == (topic, True)
    await bot.result("sendMessage", chat_id=forum.id, text="general answer")
    assert [m["text"] for m in fake.messages(forum, thread_id=topic)] == ["answer"]
    assert [m["text"] for m in await fake.wait_for_messages(forum, 2)] == ["answer", "general answer"]


async def test_group_migration_gives_migrate_to_chat_id(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    group = fake.group("Growing")
    supergroup = fake.migrate_to_supergroup(group, by=ann)
    answer = await bot.call("sendMessage", chat_id=group.id, text="hi")
    assert answer == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": supergroup.id},
    }
    old, new = [u["message"] for u in await bot.updates()]
    assert (old["chat"]["id"], old["migrate_to_chat_id"]) == (group.id, supergroup.id)
    assert (new["chat"]["id"], new["migrate_from_chat_id"]) == (supergroup.id, group.id)
    assert supergroup.type == "supergroup" and str(supergroup.id).startswith("-100")
    await bot.result("sendMessage", chat_id=supergroup.id, text="hi again")


async def test_blocked_and_kicked_chats_get_403(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    fake.private_chat(ann)
    group, supergroup = fake.group("G"), fake.supergroup("S")
    fake.block(ann)
    fake.block(group, by=ann)
    fake.block(supergroup)
    for chat, description in ((ann.id, "Forbidden: bot was blocked by the user"),
                              (group.id, "Forbidden: bot was kicked from the group chat"),
                              (supergroup.id, "Forbidden: bot was kicked from the supergroup chat")):  # fmt: skip
        assert await bot.call("sendMessage", chat_id=chat, text="x") == {
            "ok": False, "error_code": 403, "description": description}  # fmt: skip
        assert (await bot.call("sendChatAction", chat_id=chat, action="typing"))["error_code"] == 403
    updates = [u["my_chat_member"] for u in await bot.updates()]
    assert [u["chat"]["id"] for u in updates] == [ann.id, group.id], "a kick by nobody known sends no update"
    assert updates[0]["new_chat_member"] == {"user": fake.bot.wire(), "status": "kicked", "until_date": 0}
    fake.unblock(ann)
    await bot.result("sendMessage", chat_id=ann.id, text="welcome back")


async def test_edits_drafts_and_chat_actions_are_recorded(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    chat = fake.private_chat(ann)
    assert await bot.result("sendChatAction", chat_id=chat.id, action="typing") is True
    assert await bot.result("sendMessageDraft", chat_id=chat.id, draft_id=7, text="Thi") is True
    assert await bot.result("sendMessageDraft", chat_id=chat.id, draft_id=7, text="") is True
    placeholder = await bot.result("sendMessage", chat_id=chat.id, text="…")
    edited = await bot.result("editMessageText", chat_id=chat.id, message_id=placeholder["message_id"],
                              text="<b>Done</b>", parse_mode="HTML")  # fmt: skip
    assert edited["text"] == "Done" and edited["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    assert edited["edit_date"] >= edited["date"]
    assert [(a.action, a.chat_id) for a in fake.chat_actions(chat)] == [("typing", chat.id)]
    assert [(d.draft_id, d.text) for d in fake.drafts(chat)] == [(7, "Thi"), (7, "")]
    assert [(e.message_id, e.text) for e in fake.edits(chat)] == [(placeholder["message_id"], "Done")]
    assert [m["text"] for m in fake.messages(chat)] == ["Done"], "messages() shows the current text"


async def test_inline_keyboards_are_echoed_and_removed_by_an_edit_without_one(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.private_chat(fake.user("Ann"))
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    sent = await bot.result("sendMessage", chat_id=chat.id, text="Sure?", reply_markup=keyboard)
    assert sent["reply_markup"] == keyboard
    edited = await bot.result("editMessageText", chat_id=chat.id, message_id=sent["message_id"], text="Sure?")
    assert "reply_markup" not in edited


async def test_button_presses_become_callback_queries(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    fake.private_chat(ann)
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    sent = await bot.result("sendMessage", chat_id=ann.id, text="Sure?", reply_markup=keyboard)
    with pytest.raises(ValueError, match="no button"):
        fake.press_button(ann, sent["message_id"], "n")
    query_id = fake.press_button(ann, sent["message_id"], "y")
    [update] = await bot.updates()
    query = update["callback_query"]
    assert (query["id"], query["data"], query["from"]["id"]) == (query_id, "y", ann.id)
    assert query["message"]["reply_markup"] == keyboard
    too_long = await bot.call("answerCallbackQuery", callback_query_id=query_id, text="x" * 201)
    assert too_long["description"] == "Bad Request: MESSAGE_TOO_LONG"
    assert await bot.result("answerCallbackQuery", callback_query_id=query_id, text="Done") is True
    again = await bot.call("answerCallbackQuery", callback_query_id=query_id)
    assert again["description"] == ("Bad Request: query is too old and response timeout expired or query ID is invalid")
    assert [(a.callback_query_id, a.text) for a in fake.callback_answers(ann)] == [(query_id, "Done")]


async def test_replies_and_deletes(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    asked = fake.send_text(ann, "question")
    answer = await bot.result("sendMessage", chat_id=ann.id, text="answer",
                              reply_parameters={"message_id": asked["message_id"]})  # fmt: skip
    assert answer["reply_to_message"]["text"] == "question"
    orphan = await bot.result("sendMessage", chat_id=ann.id, text="x",
                              reply_parameters={"message_id": 999, "allow_sending_without_reply": True})  # fmt: skip
    assert "reply_to_message" not in orphan
    assert await bot.result("deleteMessage", chat_id=ann.id, message_id=orphan["message_id"]) is True
    assert [m["text"] for m in fake.messages(ann.id)] == ["answer"]
    assert [m["text"] for m in fake.history(ann.id)] == ["question", "answer"]


async def test_user_media_is_served_through_get_file(fake: FakeBotApi, bot: Bot) -> None:
    ann = fake.user("Ann")
    image = make_png(5, 3)
    fake.send_photo(ann, image, caption="look #cat")
    fake.send_document(ann, b"%PDF-1.4 tiny", file_name="a.pdf", mime_type="application/pdf")
    fake.send_voice(ann, b"OggS voice", duration=2)
    photo, document, voice = [u["message"] for u in await bot.updates()]
    assert photo["photo"][0]["width"] == 5 and photo["caption"] == "look #cat"
    assert photo["caption_entities"] == [{"type": "hashtag", "offset": 5, "length": 4}]
    assert document["document"]["file_name"] == "a.pdf"
    assert voice["voice"]["duration"] == 2
    for file_id, data in ((photo["photo"][-1]["file_id"], image), (document["document"]["file_id"], b"%PDF-1.4 tiny"),
                          (voice["voice"]["file_id"], b"OggS voice")):  # fmt: skip
        info = await bot.result("getFile", file_id=file_id)
        assert info["file_size"] == len(data)
        download = await bot.client.get(f"{fake.base_file_url}{fake.token}/{info['file_path']}")
        assert download.content == data


async def test_send_photo_upload_reuse_and_attach(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.private_chat(fake.user("Ann"))
    fields = {"chat_id": str(chat.id), "caption": "*hi*", "parse_mode": "MarkdownV2"}
    photo = {"photo": ("p.png", make_png(8, 6))}
    uploaded = await bot.client.post(f"{fake.bot_url}/sendPhoto", data=fields, files=photo)
    first = uploaded.json()["result"]
    assert (first["caption"], first["caption_entities"]) == ("hi", [{"type": "bold", "offset": 0, "length": 2}])
    file_id = first["photo"][0]["file_id"]
    again = await bot.result("sendPhoto", chat_id=chat.id, photo=file_id)
    assert again["photo"][0]["file_id"] == file_id
    attached = await bot.client.post(f"{fake.bot_url}/sendPhoto", data={"chat_id": str(chat.id),
                                     "photo": "attach://pic"}, files={"pic": ("x.png", make_png(2, 2))})  # fmt: skip
    assert attached.json()["result"]["photo"][0]["width"] == 2


async def test_commands_per_scope_and_language(fake: FakeBotApi, bot: Bot) -> None:
    commands = [{"command": "start", "description": "Start"}, {"command": "new", "description": "New session"}]
    assert await bot.result("setMyCommands", commands=commands) is True
    await bot.result("setMyCommands", commands=commands[:1], scope={"type": "all_group_chats"}, language_code="de")
    assert await bot.result("getMyCommands") == commands
    assert fake.commands() == commands
    assert fake.commands(scope={"type": "all_group_chats"}, language_code="de") == commands[:1]
    assert await bot.result("deleteMyCommands") is True
    assert await bot.result("getMyCommands") == []


async def test_wait_for_messages_times_out_with_what_was_sent(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.private_chat(fake.user("Ann"))
    await bot.result("sendMessage", chat_id=chat.id, text="only one")
    with pytest.raises(TimeoutError, match="only one"):
        await fake.wait_for_messages(chat, 2, timeout=0.05)


async def test_wait_for_messages_wakes_on_the_nth_message(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.private_chat(fake.user("Ann"))
    seen: list[list[dict[str, Any]]] = []

    async def waiter() -> None:
        seen.append(await fake.wait_for_messages(chat, 3, timeout=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        for n in range(3):
            await bot.result("sendMessage", chat_id=chat.id, text=str(n))
    assert [m["text"] for m in seen[0]] == ["0", "1", "2"]


async def test_channel_usernames_resolve(fake: FakeBotApi, bot: Bot) -> None:
    supergroup = fake.supergroup("Public", username="PublicChat")
    sent = await bot.result("sendMessage", chat_id="@publicchat", text="x")
    assert sent["chat"] == {"id": supergroup.id, "title": "Public", "username": "PublicChat", "type": "supergroup"}
