"""Pure tests of `decide`: which updates reach an actor, in which conversation, and what they carry (T-05..T-08)."""

from __future__ import annotations

from typing import Any

import pytest

from afactors_telegram.config import ChatCommand, TelegramConfig
from afactors_telegram.inbound import (
    Address,
    BotInfo,
    ButtonPress,
    CommandRequest,
    Ignore,
    MediaRef,
    TurnRequest,
    conversation_id,
    decide,
    idempotency_key,
    turn_id_for,
)
from afactors_telegram.testing.markup import detect_entities

BOT = BotInfo(id=777, username="Afactors_Bot")
TOKEN = "777:AAtesttoken"
ALICE = {"id": 11, "is_bot": False, "first_name": "Alice", "last_name": "Liddell"}
BOB = {"id": 12, "is_bot": False, "first_name": "Bob"}
BOT_USER = {"id": BOT.id, "is_bot": True, "first_name": "Bot", "username": BOT.username}
PRIVATE = {"id": 11, "type": "private", "first_name": "Alice"}
GROUP = {"id": -500, "type": "group", "title": "G"}
FORUM = {"id": -100500, "type": "supergroup", "title": "F", "is_forum": True}


async def _echo(call: Any) -> str:
    return call.args


def config(**kw: Any) -> TelegramConfig:
    return TelegramConfig(token=TOKEN, commands=[ChatCommand("weather", "Weather", _echo)], **kw)


def update(text: str | None = None, *, chat: dict[str, Any] = PRIVATE, sender: dict[str, Any] | None = ALICE,
           update_id: int = 1, message_id: int = 5, entities: list[dict[str, Any]] | None = None,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    message: dict[str, Any] = {"message_id": message_id, "date": 0, "chat": chat}
    if sender is not None:
        message["from"] = sender
    if text is not None:
        message["text"] = text
        found = detect_entities(text, entities or [])
        if found:
            message["entities"] = found
    message.update(extra)
    return {"update_id": update_id, "message": message}


def test_private_text_is_a_turn_in_the_users_own_conversation() -> None:
    decision = decide(update("hello"), BOT, config())
    assert decision == TurnRequest(1, Address(11, "private"), 5, decision.sender, "telegram:777:11", "hello")
    assert decision.sender.name == "Alice Liddell"


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"update_id": "1", "message": {}},
        {"update_id": 1},
        {"update_id": 1, "message": "text"},
        {"update_id": 1, "edited_message": "x"},
        {"update_id": 1, "my_chat_member": {"chat": PRIVATE}},
        {"update_id": 1, "channel_post": {"message_id": 1, "chat": {"id": 1, "type": "channel"}, "text": "x"}},
        {"update_id": 1, "callback_query": {"from": ALICE, "data": "x"}},
        {"update_id": 1, "callback_query": "x"},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": "x", "type": "private"}, "text": "x"}},
        {"update_id": 1, "message": {"chat": PRIVATE, "from": ALICE, "text": "x"}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "channel"}, "text": "x"}},
        {"update_id": 1, "message": {"message_id": 1, "chat": PRIVATE, "from": "alice", "text": "x"}},
        {"update_id": 1, "message": {"message_id": 1, "chat": PRIVATE, "from": ALICE, "text": 5}},
        {"update_id": 1, "message": {"message_id": 1, "chat": PRIVATE, "from": ALICE, "entities": "x", "text": ""}},
        {"update_id": 1, "message": {"message_id": 1, "chat": PRIVATE, "from": ALICE, "photo": "x"}},
    ],
)
def test_malformed_or_unsupported_updates_are_ignored_never_raise(bad: dict[str, Any]) -> None:
    assert isinstance(decide(bad, BOT, config()), Ignore)


def test_messages_from_bots_and_without_content_are_ignored() -> None:
    assert isinstance(decide(update("hi", sender={**BOB, "is_bot": True}), BOT, config()), Ignore)
    assert isinstance(decide(update("hi", sender=None), BOT, config()), Ignore)
    assert isinstance(decide(update(None, new_chat_members=[BOB]), BOT, config()), Ignore)
    assert isinstance(decide(update("   "), BOT, config()), Ignore)


def test_builtin_and_registered_commands_are_commands_with_arguments() -> None:
    for name in ("start", "new", "help", "weather"):
        decision = decide(update(f"/{name} in Paris"), BOT, config())
        assert isinstance(decision, CommandRequest)
        assert (decision.name, decision.args, decision.conversation) == (name, "in Paris", "telegram:777:11")


def test_unknown_commands_go_to_the_agent_as_text() -> None:
    decision = decide(update("/translate hola"), BOT, config())
    assert isinstance(decision, TurnRequest) and decision.text == "/translate hola"


def test_commands_addressed_to_us_count_and_to_other_bots_are_ignored() -> None:
    ours = decide(update("/new@afactors_bot"), BOT, config())  # usernames compare case-insensitively
    assert isinstance(ours, CommandRequest) and ours.name == "new"
    other = decide(update("/new@OtherBot"), BOT, config())
    assert isinstance(other, Ignore) and "another bot" in other.reason
    assert isinstance(decide(update("/new@OtherBot", chat=GROUP, sender=BOB), BOT, config()), Ignore)


def test_a_command_not_at_the_start_is_text() -> None:
    decision = decide(update("please /new"), BOT, config())
    assert isinstance(decision, TurnRequest)


def group_message(text: str, **kw: Any) -> dict[str, Any]:
    return update(text, chat=GROUP, sender=BOB, **kw)


MENTION = "@afactors_bot what is up"
TEXT_MENTION = {"type": "text_mention", "offset": 0, "length": 3, "user": BOT_USER}
REPLY_TO_BOT = {"message_id": 3, "date": 0, "chat": GROUP, "from": BOT_USER, "text": "earlier answer"}
REPLY_TO_OTHER = {"message_id": 3, "date": 0, "chat": GROUP, "from": ALICE, "text": "earlier"}


@pytest.mark.parametrize(
    ("policy", "plain", "mention", "text_mention", "reply", "known", "unknown", "unknown_at_us"),
    [
        ("mention_only", False, True, True, True, True, False, True),
        ("mention_or_command", False, True, True, True, True, True, True),
        ("command_only", False, False, False, False, True, True, True),
        ("all", True, True, True, True, True, True, True),
    ],
)
def test_accept_in_group(policy: str, plain: bool, mention: bool, text_mention: bool, reply: bool, known: bool,
                         unknown: bool, unknown_at_us: bool) -> None:  # fmt: skip
    cfg = config(accept_in_group=policy)

    def accepted(u: dict[str, Any]) -> bool:
        return not isinstance(decide(u, BOT, cfg), Ignore)

    assert accepted(group_message("just chatting")) is plain
    assert accepted(group_message(MENTION)) is mention
    assert accepted(group_message("Bot, hello", entities=[TEXT_MENTION])) is text_mention
    assert accepted(group_message("right", reply_to_message=REPLY_TO_BOT)) is reply
    assert accepted(group_message("/weather")) is known
    assert accepted(group_message("/translate x")) is unknown
    assert accepted(group_message("/translate@afactors_bot x")) is unknown_at_us
    assert accepted(group_message("right", reply_to_message=REPLY_TO_OTHER)) is plain
    assert accepted(group_message("hey @someone_else")) is plain


def test_private_chats_accept_everything_whatever_the_group_policy() -> None:
    assert isinstance(decide(update("plain"), BOT, config(accept_in_group="command_only")), TurnRequest)


def test_a_leading_mention_is_stripped_from_the_text() -> None:
    assert decide(group_message(MENTION), BOT, config()).text == "what is up"
    assert decide(group_message("@afactors_bot, hi"), BOT, config()).text == "hi"
    assert decide(group_message("hi @afactors_bot"), BOT, config()).text == "hi @afactors_bot"
    assert decide(group_message("@afactors_bot"), BOT, config()).text == "@afactors_bot"
    emoji = decide(group_message("😀 @afactors_bot go"), BOT, config())  # entity offsets are UTF-16
    assert isinstance(emoji, TurnRequest) and emoji.text == "😀 @afactors_bot go"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("per_user_per_conversation", "telegram:777:12:-500"),
        ("per_user", "telegram:777:12"),
        ("per_conversation", "_conv:telegram:777:-500"),
    ],
)
def test_conversation_scope_in_groups(scope: str, expected: str) -> None:
    decision = decide(group_message(MENTION), BOT, config(conversation_scope=scope))
    assert decision.conversation == expected
    private = decide(
        update("hi", sender=BOB, chat={"id": 12, "type": "private"}), BOT, config(conversation_scope=scope)
    )
    assert private.conversation == "telegram:777:12"


def test_forum_topics_are_conversations_of_their_own_and_replies_go_to_the_topic() -> None:
    topic_root = {"message_id": 40, "date": 0, "chat": FORUM, "from": BOT_USER, "forum_topic_created": {"name": "t"}}
    message = update(MENTION, chat=FORUM, sender=BOB, message_thread_id=40, is_topic_message=True,
                     reply_to_message=topic_root)  # fmt: skip
    decision = decide(message, BOT, config())
    assert decision.address == Address(-100500, "supergroup", 40, 5)
    assert decision.conversation == "telegram:777:12:-100500:40"
    assert conversation_id(777, "per_conversation", decision.address, 12) == "_conv:telegram:777:-100500:40"


def test_in_a_forum_the_topic_root_is_no_reply_to_the_bot() -> None:
    topic_root = {"message_id": 40, "date": 0, "chat": FORUM, "from": BOT_USER, "forum_topic_created": {"name": "t"}}
    message = update("chatting", chat=FORUM, sender=BOB, message_thread_id=40, is_topic_message=True,
                     reply_to_message=topic_root)  # fmt: skip
    assert isinstance(decide(message, BOT, config()), Ignore)


def test_the_general_topic_and_reply_threads_are_the_chat_itself() -> None:
    general = decide(update(MENTION, chat=FORUM, sender=BOB), BOT, config())
    assert general.address == Address(-100500, "supergroup", None, 5)
    thread = decide(update(MENTION, chat={**FORUM, "is_forum": False}, sender=BOB, message_thread_id=9), BOT, config())
    assert thread.address.thread_id is None


def test_media_with_caption() -> None:
    photo = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 100},
        {"file_id": "large", "file_unique_id": "l", "width": 900, "height": 900, "file_size": 9000},
    ]
    decision = decide(update(None, photo=photo, caption="look"), BOT, config())
    assert decision.text == "look"
    assert decision.media == (MediaRef("photo", "large", "image/jpeg", None, 9000),)


def test_documents_voice_audio_and_video() -> None:
    message = update(
        None,
        document={"file_id": "d", "file_unique_id": "d", "file_name": "a.pdf", "mime_type": "application/pdf"},
        voice={"file_id": "v", "file_unique_id": "v", "duration": 1, "file_size": 5},
        audio={"file_id": "a", "file_unique_id": "a", "duration": 1},
        video={"file_id": "m", "file_unique_id": "m", "duration": 1, "width": 1, "height": 1},
    )
    decision = decide(message, BOT, config())
    assert decision.text == ""
    assert decision.media == (
        MediaRef("document", "d", "application/pdf", "a.pdf", None),
        MediaRef("voice", "v", "audio/ogg", None, 5),
        MediaRef("audio", "a", "audio/mpeg", None, None),
        MediaRef("video", "m", "video/mp4", None, None),
    )


def test_media_in_groups_still_needs_addressing() -> None:
    photo = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    assert isinstance(decide(update(None, chat=GROUP, sender=BOB, photo=photo), BOT, config()), Ignore)
    caption = update(None, chat=GROUP, sender=BOB, photo=photo, caption="@afactors_bot see",
                     caption_entities=[{"type": "mention", "offset": 0, "length": 13}])  # fmt: skip
    decision = decide(caption, BOT, config())
    assert isinstance(decision, TurnRequest) and decision.text == "see"


def test_turn_ids_and_keys_are_stable_per_message_and_update() -> None:
    address = Address(-500, "group")
    turn_id = turn_id_for(777, address, 42)
    assert turn_id == "tg777_-500_42"
    assert idempotency_key(777, 9) == "tg:777:9"


def test_addresses_round_trip_and_reject_foreign_ones() -> None:
    for address in (Address(1, "private"), Address(-100, "supergroup", 7), Address(-100, "supergroup", None, 9)):
        assert Address.from_dict(address.to_dict()) == address
    bad_addresses = [
        {},
        {"chat_id": "1", "chat_type": "private"},
        {"chat_id": 1, "chat_type": "private", "message_thread_id": "x"},
        {"chat_id": 1, "chat_type": "group", "reply_to_message_id": 1.5},
    ]
    for bad in bad_addresses:
        with pytest.raises(ValueError):
            Address.from_dict(bad)


def test_an_edited_message_is_a_turn_of_its_own_with_the_edited_text() -> None:
    edited = update("better wording", update_id=9, edit_date=1700000000)
    edited["edited_message"] = edited.pop("message")
    decision = decide(edited, BOT, config())
    assert isinstance(decision, TurnRequest)
    assert (decision.text, decision.message_id, decision.conversation) == ("better wording", 5, "telegram:777:11")
    assert decision.event == {"update": "edited_message", "message_id": 5, "edit_date": 1700000000}
    assert turn_id_for(BOT.id, decision.address, 5, decision.turn_suffix) == "tg777_11_5_u9"


def test_an_edited_command_is_not_run_again_and_group_edits_follow_accept_in_group() -> None:
    command = update("/new")
    command["edited_message"] = command.pop("message")
    assert decide(command, BOT, config()) == Ignore("an edited command is not run again")
    chatter = update("just chatting", chat=GROUP)
    chatter["edited_message"] = chatter.pop("message")
    assert isinstance(decide(chatter, BOT, config()), Ignore)


def press(data: Any = "yes", *, chat: dict[str, Any] = PRIVATE, sender: Any = ALICE, **message: Any) -> dict[str, Any]:
    shown = {"message_id": 40, "date": 0, "chat": chat, "from": BOT_USER, "text": "Proceed?", **message}
    query = {"id": "4711", "from": sender, "chat_instance": "1", "message": shown, "data": data}
    return {"update_id": 3, "callback_query": query}


def test_a_button_press_is_a_turn_with_its_data_and_the_query_to_answer() -> None:
    decision = decide(press(), BOT, config())
    assert isinstance(decision, ButtonPress) and decision.query_id == "4711"
    turn = decision.turn
    assert turn is not None and (turn.text, turn.conversation, turn.address) == (
        "yes", "telegram:777:11", Address(11, "private"))  # fmt: skip
    assert turn.event == {"update": "callback_query", "data": "yes", "message_id": 40, "message_text": "Proceed?"}
    assert turn_id_for(BOT.id, turn.address, turn.message_id, turn.turn_suffix) == "tg777_11_40_u3"


def test_a_button_press_in_a_group_is_the_pressers_and_quotes_the_buttons_message() -> None:
    decision = decide(press(chat=GROUP, sender=BOB), BOT, config())
    assert isinstance(decision, ButtonPress) and decision.turn is not None
    assert decision.turn.sender.id == 12 and decision.turn.address == Address(-500, "group", None, 40)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (press(data=None), "no callback data"),
        (press(data=7), "no callback data"),
        (press(sender=BOT_USER), "not pressed by a user"),
        (press(chat={"id": 1, "type": "channel"}), "inline mode"),
        (
            {"update_id": 3, "callback_query": {"id": "4711", "from": ALICE, "inline_message_id": "x", "data": "y"}},
            "inline mode",
        ),
    ],
)
def test_a_press_that_starts_no_turn_is_still_answered(query: dict[str, Any], reason: str) -> None:
    decision = decide(query, BOT, config())
    assert isinstance(decision, ButtonPress) and decision.turn is None and reason in decision.reason
