"""Every kind of bad request gets Telegram's error envelope from the fake (trio + httpx over loopback)."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest

from afactors_telegram.testing import FakeBotApi, make_png, open_fake_bot_api


@attrs.frozen
class Env:
    fake: FakeBotApi
    client: httpx.AsyncClient
    user_chat: int
    group: int
    forum: int
    topic: int
    bot_message: int
    user_message: int
    photo_file_id: str


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with open_fake_bot_api(rate_limits=None) as fake, httpx.AsyncClient() as client:
        user = fake.user("Ann", username="ann")
        group = fake.group("G")
        forum = fake.supergroup("F", forum=True, username="forum_chat")
        topic = fake.create_topic(forum, "Topic", creator=user)
        user_message = fake.send_text(user, "hello")["message_id"]
        photo = fake.send_photo(user, make_png())["photo"][0]["file_id"]
        answer = await client.post(f"{fake.bot_url}/sendMessage", json={"chat_id": user.id, "text": "same"})
        bot_message = answer.json()["result"]["message_id"]
        yield Env(fake, client, user.id, group.id, forum.id, topic, bot_message, user_message, photo)
        assert all(call.status != 500 for call in fake.calls())


async def _call(env: Env, method: str, payload: dict[str, Any]) -> httpx.Response:
    return await env.client.post(f"{env.fake.bot_url}/{method}", json=payload)


def _envelope(answer: httpx.Response, status: int, description: str) -> None:
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"ok": False, "error_code": status, "description": description}


async def test_unknown_method_is_404(env: Env) -> None:
    _envelope(await _call(env, "sendTelepathy", {}), 404, "Not Found")


async def test_wrong_token_is_401_and_malformed_token_is_404(env: Env) -> None:
    base = env.fake.api_base
    _envelope(await env.client.post(f"{base}/bot123:WRONG/getMe"), 401, "Unauthorized")
    _envelope(await env.client.post(f"{base}/botnot-a-token/getMe"), 404, "Not Found")
    _envelope(await env.client.get(f"{base}/file/bot123:WRONG/photos/file_1.png"), 401, "Unauthorized")
    _envelope(await env.client.get(f"{base}/elsewhere"), 404, "Not Found")


async def test_method_names_are_case_insensitive(env: Env) -> None:
    answer = await _call(env, "GETME", {})
    assert answer.json()["result"]["username"] == "afactors_test_bot"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", b"{not json"), ("application/json", b"[1]"), ("text/plain", b"hi"),
     ("multipart/form-data; boundary=q", b"--q\r\nbroken")],
)  # fmt: skip
async def test_undecodable_body_is_400(env: Env, content_type: str, body: bytes) -> None:
    answer = await env.client.post(f"{env.fake.bot_url}/sendMessage", content=body,
                                   headers={"content-type": content_type})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["description"].startswith("Bad Request: ")


Payload = Callable[[Env], dict[str, Any]]
TOO_LONG = "Bad Request: message is too long"

CASES: list[tuple[str, str, Payload, int, str]] = [
    ("missing chat_id", "sendMessage", lambda e: {"text": "x"}, 400, "Bad Request: chat_id is empty"),
    ("missing text", "sendMessage", lambda e: {"chat_id": e.user_chat}, 400, "Bad Request: message text is empty"),
    ("blank text", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": " \n "}, 400,
     "Bad Request: message text is empty"),
    ("markup-only text", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "<b></b>", "parse_mode": "HTML"},
     400, "Bad Request: message text is empty"),
    ("4097 chars", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "x" * 4097}, 400, TOO_LONG),
    ("4098 UTF-16 units", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "🏟" * 2049}, 400, TOO_LONG),
    ("too long after parsing", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "*" + "x" * 4097 + "*", "parse_mode": "MarkdownV2"}, 400, TOO_LONG),
    ("unknown chat", "sendMessage", lambda e: {"chat_id": 777, "text": "x"}, 400, "Bad Request: chat not found"),
    ("unknown username", "sendMessage", lambda e: {"chat_id": "@nobody", "text": "x"}, 400,
     "Bad Request: chat not found"),
    ("non-numeric chat_id", "sendMessage", lambda e: {"chat_id": "abc", "text": "x"}, 400,
     "Bad Request: chat not found"),
    ("MarkdownV2 reserved", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "Version 1.0", "parse_mode": "MarkdownV2"}, 400,
     "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"),
    ("MarkdownV2 unclosed", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "*bold", "parse_mode": "MarkdownV2"}, 400,
     "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0"),
    ("HTML unclosed", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "<b>x", "parse_mode": "HTML"}, 400,
     "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""),
    ("unknown parse_mode", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "x", "parse_mode": "BBCode"},
     400, "Bad Request: unsupported parse_mode"),
    ("bad entities", "sendMessage", lambda e: {"chat_id": e.user_chat, "text": "x", "entities": [{"type": 1}]},
     400, "Bad Request: can't parse MessageEntity at index 0"),
    ("unknown topic", "sendMessage", lambda e: {"chat_id": e.forum, "text": "x", "message_thread_id": 999}, 400,
     "Bad Request: message thread not found"),
    ("thread in a private chat", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "x", "message_thread_id": 5}, 400,
     "Bad Request: message thread not found"),
    ("reply to missing message", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "x", "reply_parameters": {"message_id": 999}}, 400,
     "Bad Request: message to be replied not found"),
    ("malformed reply_parameters", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "x", "reply_parameters": "{oops"}, 400,
     "Bad Request: can't parse reply_parameters JSON object"),
    ("malformed reply_markup", "sendMessage",
     lambda e: {"chat_id": e.user_chat, "text": "x", "reply_markup": [1]}, 400,
     "Bad Request: can't parse reply keyboard markup JSON object"),
    ("not modified", "editMessageText",
     lambda e: {"chat_id": e.user_chat, "message_id": e.bot_message, "text": "same"}, 400,
     "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
     "as a current content and reply markup of the message"),
    ("edit too long", "editMessageText",
     lambda e: {"chat_id": e.user_chat, "message_id": e.bot_message, "text": "x" * 4097}, 400,
     "Bad Request: MESSAGE_TOO_LONG"),
    ("edit missing message", "editMessageText", lambda e: {"chat_id": e.user_chat, "message_id": 999, "text": "x"},
     400, "Bad Request: message to edit not found"),
    ("edit a user's message", "editMessageText",
     lambda e: {"chat_id": e.user_chat, "message_id": e.user_message, "text": "x"}, 400,
     "Bad Request: message can't be edited"),
    ("edit without message_id", "editMessageText", lambda e: {"chat_id": e.user_chat, "text": "x"}, 400,
     "Bad Request: message identifier is not specified"),
    ("edit with non-integer message_id", "editMessageText",
     lambda e: {"chat_id": e.user_chat, "message_id": "abc", "text": "x"}, 400,
     "Bad Request: invalid message_id specified"),
    ("edit a photo's text", "editMessageText",
     lambda e: {"chat_id": e.user_chat, "message_id": e.user_message + 1, "text": "x"}, 400,
     "Bad Request: message can't be edited"),
    ("unknown chat action", "sendChatAction", lambda e: {"chat_id": e.user_chat, "action": "dancing"}, 400,
     "Bad Request: wrong parameter action in request"),
    ("missing chat action", "sendChatAction", lambda e: {"chat_id": e.user_chat}, 400, "Bad Request: action is empty"),
    ("draft in a group", "sendMessageDraft", lambda e: {"chat_id": e.group, "draft_id": 1, "text": "x"}, 400,
     "Bad Request: TEXTDRAFT_PEER_INVALID"),
    ("draft id zero", "sendMessageDraft", lambda e: {"chat_id": e.user_chat, "draft_id": 0, "text": "x"}, 400,
     "Bad Request: draft_id must be non-zero"),
    ("draft too long", "sendMessageDraft", lambda e: {"chat_id": e.user_chat, "draft_id": 1, "text": "x" * 4097},
     400, TOO_LONG),
    ("photo missing", "sendPhoto", lambda e: {"chat_id": e.user_chat}, 400,
     "Bad Request: there is no photo in the request"),
    ("photo unknown file_id", "sendPhoto", lambda e: {"chat_id": e.user_chat, "photo": "AgACnope"}, 400,
     "Bad Request: wrong file identifier/HTTP URL specified"),
    ("photo URL unreachable", "sendPhoto", lambda e: {"chat_id": e.user_chat, "photo": "http://127.0.0.1:9/x.png"},
     400, "Bad Request: failed to get HTTP URL content"),
    ("caption too long", "sendPhoto", lambda e: {"chat_id": e.user_chat, "photo": e.photo_file_id,
                                                 "caption": "c" * 1025}, 400,
     "Bad Request: message caption is too long"),
    ("getFile unknown", "getFile", lambda e: {"file_id": "nope"}, 400, "Bad Request: invalid file_id"),
    ("getFile missing", "getFile", lambda e: {}, 400, "Bad Request: file_id is empty"),
    ("commands missing", "setMyCommands", lambda e: {}, 400, "Bad Request: parameter \"commands\" is required"),
    ("command invalid", "setMyCommands", lambda e: {"commands": [{"command": "Has Space", "description": "d"}]},
     400, "Bad Request: BOT_COMMAND_INVALID"),
    ("command description empty", "setMyCommands", lambda e: {"commands": [{"command": "ok", "description": ""}]},
     400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"),
    ("too many commands", "setMyCommands",
     lambda e: {"commands": [{"command": f"c{i}", "description": "d"} for i in range(101)]}, 400,
     "Bad Request: BOT_COMMANDS_TOO_MUCH"),
    ("bad command scope", "setMyCommands",
     lambda e: {"commands": [], "scope": {"type": "everyone"}}, 400,
     "Bad Request: can't parse BotCommandScope JSON object"),
    ("webhook not a URL", "setWebhook", lambda e: {"url": "ftp://x"}, 400,
     "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"),
    ("webhook secret charset", "setWebhook", lambda e: {"url": "http://127.0.0.1:9/h", "secret_token": "a b"}, 400,
     "Bad Request: secret token contains unallowed characters"),
    ("webhook max_connections", "setWebhook", lambda e: {"url": "http://127.0.0.1:9/h", "max_connections": 101},
     400, "Bad Request: bad webhook: invalid max_connections specified"),
    ("allowed_updates not a list", "getUpdates", lambda e: {"allowed_updates": "message"}, 400,
     "Bad Request: can't parse allowed_updates JSON object"),
    ("timeout not a number", "getUpdates", lambda e: {"timeout": "soon"}, 400,
     "Bad Request: invalid timeout specified"),
    ("delete missing message", "deleteMessage", lambda e: {"chat_id": e.user_chat, "message_id": 999}, 400,
     "Bad Request: message to delete not found"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "payload", "status", "description"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])  # fmt: skip
async def test_bad_input(env: Env, method: str, payload: Payload, status: int, description: str) -> None:
    _envelope(await _call(env, method, payload(env)), status, description)


async def test_limits_are_inclusive(env: Env) -> None:
    for text in ("x" * 4096, "🏟" * 2048):
        answer = await _call(env, "sendMessage", {"chat_id": env.user_chat, "text": text})
        assert answer.status_code == 200
    caption = {"chat_id": env.user_chat, "photo": env.photo_file_id, "caption": "c" * 1024}
    answer = await _call(env, "sendPhoto", caption)
    assert answer.status_code == 200


async def test_not_an_image_is_rejected(env: Env) -> None:
    answer = await env.client.post(f"{env.fake.bot_url}/sendPhoto", data={"chat_id": str(env.user_chat)},
                                   files={"photo": ("x.png", b"not an image", "image/png")})  # fmt: skip
    _envelope(answer, 400, "Bad Request: IMAGE_PROCESS_FAILED")


async def test_missing_file_download_is_404(env: Env) -> None:
    answer = await env.client.get(f"{env.fake.base_file_url}{env.fake.token}/photos/nothing.png")
    _envelope(answer, 404, "Not Found")


async def test_get_updates_while_webhook_is_set_is_409(env: Env) -> None:
    assert (await _call(env, "setWebhook", {"url": "http://127.0.0.1:9/hook"})).status_code == 200
    _envelope(await _call(env, "getUpdates", {}), 409,
              "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
              "webhook first")  # fmt: skip


async def test_every_failure_is_recorded(env: Env) -> None:
    await _call(env, "sendMessage", {"chat_id": 777, "text": "x"})
    last = env.fake.calls("sendMessage")[-1]
    assert (last.status, last.params, last.ok) == (400, {"chat_id": 777, "text": "x"}, False)
    assert last.response["description"] == "Bad Request: chat not found"


async def test_a_crash_inside_the_fake_is_a_500_and_fails_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from afactors_telegram.testing import methods

    def broken(api: object, params: object) -> None:
        raise KeyError("bug in the fake")

    monkeypatch.setitem(methods._SYNC, "getme", broken)
    with pytest.raises(RuntimeError, match="KeyError: 'bug in the fake'"):
        async with open_fake_bot_api() as fake, httpx.AsyncClient() as client:
            answer = await client.post(f"{fake.bot_url}/getMe")
            assert answer.status_code == 500
            assert answer.json() == {"ok": False, "error_code": 500, "description": "Internal Server Error"}
