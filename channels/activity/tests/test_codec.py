"""The pure codec: Activity JSON in, decisions, outbound Activities and Connector URLs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from microsoft_agents.activity import Activity as ModelActivity
from microsoft_agents.activity import ConversationReference

from afactors.model import ErrorInfo, Message, Reply, UriPart
from afactors_activity.activity import BadActivity, ConversationRef, parse_activity
from afactors_activity.inbound import (
    Ignore,
    Invoke,
    NewConversation,
    TurnRequest,
    Welcome,
    conversation_id,
    decide,
    idempotency_key,
)
from afactors_activity.outbound import (
    GENERIC_ERROR,
    activities_url,
    message_activity,
    reply_text,
    stream_chunk,
    stream_final,
    stream_interval,
    typing_activity,
)

BOT = {"id": "28:bot", "name": "Helper"}
MESSAGE: dict[str, Any] = {
    "type": "message",
    "id": "1:abc",
    "channelId": "msteams",
    "serviceUrl": "https://smba.trafficmanager.net/amer/",
    "from": {"id": "29:alice", "name": "Alice", "aadObjectId": "aad-alice"},
    "recipient": BOT,
    "conversation": {"id": "a:1x;messageid=9", "conversationType": "personal", "tenantId": "t1"},
    "text": "hello",
    "locale": "en-US",
}


def activity(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(MESSAGE)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def group(**changes: Any) -> dict[str, Any]:
    return activity(conversation={"id": "19:group@thread.v2", "conversationType": "groupChat", "isGroup": True,
                                  "tenantId": "t1"}, **changes)  # fmt: skip


MENTION = {"type": "mention", "mentioned": BOT, "text": "<at>Helper</at>"}


def decide_(body: dict[str, Any], scope: str = "per_user_per_conversation", accept: str = "mention_only",
            welcome: bool = False) -> Any:  # fmt: skip
    return decide(parse_activity(body), scope=scope, accept_in_group=accept, welcome=welcome)


# -- parsing ------------------------------------------------------------------------------------------------


def test_a_teams_message_is_read() -> None:
    parsed = parse_activity(MESSAGE)
    assert parsed.type == "message" and parsed.id == "1:abc" and parsed.channel_id == "msteams"
    assert parsed.sender is not None and parsed.sender.aad_object_id == "aad-alice"
    assert parsed.conversation.tenant_id == "t1" and not parsed.conversation.group
    assert parsed.text == "hello" and parsed.locale == "en-US" and not parsed.expects_replies


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the body must be an object"),
        ("text", "the body must be an object"),
        (activity(type=None), "type is required"),
        (activity(type=""), "type must be a non-empty string"),
        (activity(type=5), "type must be"),
        (activity(conversation=None), "conversation must be an object"),
        (activity(conversation={}), "conversation.id is required"),
        (activity(conversation={"id": 7}), "conversation.id must be"),
        (activity(conversation={"id": "c", "isGroup": "yes"}), "isGroup must be a boolean"),
        (activity(serviceUrl=None), "serviceUrl is required"),
        (activity(serviceUrl="javascript:alert(1)"), "serviceUrl must be an http"),
        (activity(channelId=None), "channelId is required"),
        (activity(**{"from": None}), "a message needs from and recipient"),
        (activity(recipient=None), "a message needs from and recipient"),
        (activity(**{"from": {"name": "x"}}), "from.id is required"),
        (activity(**{"from": "alice"}), "from must be an object"),
        (activity(text=["a"]), "text must be a string"),
        (activity(entities={"type": "mention"}), "entities must be a list of objects"),
        (activity(entities=["mention"]), "entities must be a list of objects"),
        (activity(attachments="x"), "attachments must be a list of objects"),
        (activity(membersAdded={"id": "x"}), "membersAdded must be a list"),
        (activity(membersAdded=[{"name": "x"}]), r"membersAdded\[\].id is required"),
    ],
)
def test_bad_activities_are_refused_with_a_reason(body: Any, problem: str) -> None:
    with pytest.raises(BadActivity, match=problem):
        parse_activity(body)


def test_a_reference_round_trips_and_is_a_conversation_reference() -> None:
    ref = parse_activity(MESSAGE).reference()
    data = ref.to_dict()
    assert ConversationRef.from_dict(data) == ref
    model = ConversationReference.model_validate(data)
    assert model.service_url == MESSAGE["serviceUrl"] and model.conversation.id == MESSAGE["conversation"]["id"]
    assert model.activity_id == "1:abc"


BROKEN_REFS = [
    {},
    {"serviceUrl": "https://x/", "channelId": "c"},
    {"serviceUrl": "https://x/", "channelId": "c", "conversation": {"id": "c"}, "bot": {}},
]


@pytest.mark.parametrize("data", BROKEN_REFS)
def test_a_broken_reference_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(BadActivity):
        ConversationRef.from_dict(data)


# -- decisions ------------------------------------------------------------------------------------------------


def test_a_personal_message_becomes_a_turn() -> None:
    decision = decide_(MESSAGE)
    assert isinstance(decision, TurnRequest)
    assert decision.text == "hello" and decision.conversation == "activity:msteams:t1:29:alice"
    assert decision.idempotency_key == "activity:msteams:a:1x;messageid=9:1:abc"
    assert decision.ref.activity_id == "1:abc" and decision.ref.bot.id == "28:bot"


def test_a_group_message_needs_a_mention_of_the_bot() -> None:
    assert isinstance(decide_(group()), Ignore)
    other = {"type": "mention", "mentioned": {"id": "29:bob"}, "text": "<at>Bob</at>"}
    assert isinstance(decide_(group(text="<at>Bob</at> hi", entities=[other])), Ignore)
    decision = decide_(group(text="<at>Helper</at> what is up?", entities=[MENTION]))
    assert isinstance(decision, TurnRequest) and decision.text == "what is up?"


def test_a_teams_channel_message_needs_a_mention_too() -> None:
    channel = {"id": "19:general@thread.skype;messageid=17", "conversationType": "channel", "tenantId": "t1"}
    assert isinstance(decide_(activity(conversation=channel)), Ignore)
    decision = decide_(activity(conversation=channel, text="<at>Helper</at> hi", entities=[MENTION]))
    assert isinstance(decision, TurnRequest) and decision.text == "hi"


def test_accept_all_takes_group_messages_without_a_mention() -> None:
    decision = decide_(group(), accept="all")
    assert isinstance(decision, TurnRequest) and decision.text == "hello"


def test_conversation_scopes_key_groups_like_telegram() -> None:
    body = parse_activity(group())
    assert conversation_id(body, "per_user_per_conversation") == "activity:msteams:t1:29:alice:19:group@thread.v2"
    assert conversation_id(body, "per_user") == "activity:msteams:t1:29:alice"
    assert conversation_id(body, "per_conversation") == "_conv:activity:msteams:t1:19:group@thread.v2"
    personal = parse_activity(MESSAGE)
    for scope in ("per_user_per_conversation", "per_user", "per_conversation"):
        assert conversation_id(personal, scope) == "activity:msteams:t1:29:alice"
    assert (
        conversation_id(parse_activity(activity(conversation={"id": "c"})), "per_user") == "activity:msteams:-:29:alice"
    )


def test_no_activity_id_means_no_dedup_key() -> None:
    assert idempotency_key(parse_activity(activity(id=None))) is None


def test_the_bots_own_messages_and_empty_messages_are_ignored() -> None:
    assert isinstance(decide_(activity(**{"from": BOT})), Ignore)
    assert isinstance(decide_(activity(text="   ")), Ignore)
    assert isinstance(decide_(group(text="<at>Helper</at>", entities=[MENTION])), Ignore)


def test_attachments_with_a_url_are_passed_on() -> None:
    picture = {"contentType": "image/png", "contentUrl": "https://files.example/cat.png", "name": "cat.png"}
    card = {"contentType": "application/vnd.microsoft.card.adaptive", "content": {}}
    decision = decide_(activity(text="", attachments=[picture, card]))
    assert isinstance(decision, TurnRequest)
    assert decision.attachments == (UriPart("https://files.example/cat.png", "image/png", "cat.png"),)


def test_slash_new_starts_a_new_conversation() -> None:
    decision = decide_(activity(text="/new"))
    assert isinstance(decision, NewConversation) and decision.conversation == "activity:msteams:t1:29:alice"
    assert isinstance(decide_(group(text="<at>Helper</at> /NEW", entities=[MENTION])), NewConversation)


@pytest.mark.parametrize(
    "kind", ["typing", "endOfConversation", "messageReaction", "installationUpdate", "event", "messageUpdate",
             "somethingNew"],
)  # fmt: skip
def test_other_activity_types_are_ignored_on_purpose(kind: str) -> None:
    assert isinstance(decide_(activity(type=kind, **{"from": None}, recipient=None)), Ignore)


def test_invoke_is_recognised() -> None:
    assert decide_(activity(type="invoke", name="adaptiveCard/action")) == Invoke("adaptiveCard/action")


def test_the_bot_joining_gets_a_welcome_when_one_is_configured() -> None:
    joined = activity(type="conversationUpdate", text=None, membersAdded=[{"id": "29:alice"}, BOT])
    decision = decide_(joined, welcome=True)
    assert isinstance(decision, Welcome) and decision.ref.activity_id is None
    assert isinstance(decide_(joined, welcome=False), Ignore)
    others = activity(type="conversationUpdate", membersAdded=[{"id": "29:bob"}])
    assert isinstance(decide_(others, welcome=True), Ignore)


# -- outbound -------------------------------------------------------------------------------------------------


REF = parse_activity(MESSAGE).reference()


def test_connector_urls_encode_ids_and_handle_trailing_slashes() -> None:
    assert activities_url(REF) == (
        "https://smba.trafficmanager.net/amer/v3/conversations/a%3A1x%3Bmessageid%3D9/activities/1%3Aabc"
    )
    assert activities_url(REF, reply=False).endswith("/v3/conversations/a%3A1x%3Bmessageid%3D9/activities")
    bare = ConversationRef.from_dict({**REF.to_dict(), "serviceUrl": "https://webchat.botframework.com"})
    assert activities_url(bare).startswith("https://webchat.botframework.com/v3/conversations/")
    teams = ConversationRef.from_dict(
        {**REF.to_dict(), "conversation": {"id": "19:x@thread.tacv2"}, "activityId": None}
    )
    assert activities_url(teams).endswith("/v3/conversations/19%3Ax%40thread.tacv2/activities")


def test_a_reply_has_the_shape_of_create_reply() -> None:
    ours = ModelActivity.model_validate(message_activity(REF, "hi **there**"))
    theirs = ModelActivity.model_validate(MESSAGE).create_reply("hi **there**")
    for field in ("type", "channel_id", "service_url", "reply_to_id", "locale", "text"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.from_property.id == theirs.from_property.id and ours.recipient.id == theirs.recipient.id
    assert ours.conversation.id == theirs.conversation.id and ours.text_format == "markdown"


def test_typing_and_stream_activities_validate() -> None:
    assert ModelActivity.model_validate(typing_activity(REF)).type == "typing"
    first = stream_chunk(REF, "Hel", 1, None)
    assert "id" not in first and first["entities"] == [
        {"type": "streaminfo", "streamType": "streaming", "streamSequence": 1}
    ]
    later = stream_chunk(REF, "Hello", 2, "s-1", "streaming")
    assert later["id"] == "s-1" and later["entities"][0]["streamId"] == "s-1" and later["text"] == "Hello"
    final = stream_final(REF, "Hello!", "s-1")
    assert final["type"] == "message" and final["id"] == "s-1"
    assert final["entities"] == [{"type": "streaminfo", "streamType": "final", "streamId": "s-1"}]
    for body in (first, later, final):
        ModelActivity.model_validate(body)


def test_streaming_is_paced_per_channel_and_only_where_supported() -> None:
    assert stream_interval(REF) == 1.0
    for channel, interval in (("webchat", 0.5), ("directline", 0.5), ("slack", None), ("emulator", None)):
        assert stream_interval(ConversationRef.from_dict({**REF.to_dict(), "channelId": channel})) == interval
    teams_group = ConversationRef.from_dict({**REF.to_dict(), "conversation": {"id": "19:g", "isGroup": True}})
    assert stream_interval(teams_group) is None


def test_users_read_the_answer_or_a_generic_error() -> None:
    assert reply_text(Reply((Message("assistant", "fine"),))) == "fine"
    failed = Reply(status="failed", error=ErrorInfo("target_error", "KeyError: 'db-password'"))
    assert reply_text(failed) == GENERIC_ERROR
    assert reply_text(Reply((Message("assistant", "half"),), status="failed")) == GENERIC_ERROR
    assert reply_text(Reply()) == GENERIC_ERROR
    assert reply_text(Reply(status="cancelled")) is None
    assert reply_text(Reply((Message("assistant", "so far"),), status="cancelled")) == "so far"
