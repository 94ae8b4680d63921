"""Settings of a Telegram channel: bot credentials, transport, group behaviour, rendering, send limits."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

import attrs

from afactors.channel import DEFAULT_TENANT
from afactors.model import BusyPolicy
from afactors_telegram.commands import BUILTIN_COMMANDS, ChatCommand, CommandHandler

__all__ = ["ChatCommand", "CommandHandler", "SendLimits", "TelegramConfig"]

DEFAULT_API_BASE = "https://api.telegram.org"
DEFAULT_WEBHOOK_PATH = "/telegram/webhook"

ConversationScope = Literal["per_user_per_conversation", "per_user", "per_conversation"]
SCOPES: tuple[str, ...] = ("per_user_per_conversation", "per_user", "per_conversation")
AcceptInGroup = Literal["mention_only", "command_only", "mention_or_command", "all"]
ACCEPT_POLICIES: tuple[str, ...] = ("mention_only", "command_only", "mention_or_command", "all")

_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@attrs.frozen
class SendLimits:
    """Token buckets every rate-limited send (sendMessage, sendPhoto, editMessageText) passes.

    Rates follow Telegram's published limits (T-16): about 1 message per second per chat, 20 per minute per
    group, 30 per second overall. Bursts are kept below what Telegram tolerates so that network jitter
    between our clock and Telegram's never turns a conforming send into a 429.
    """

    per_chat_per_second: float = 1.0
    per_chat_burst: int = 1
    per_group_per_minute: float = 20.0
    per_group_burst: int = 10
    global_per_second: float = 30.0
    global_burst: int = 1

    def __attrs_post_init__(self) -> None:
        for name in ("per_chat_per_second", "per_group_per_minute", "global_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("per_chat_burst", "per_group_burst", "global_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def _check_token(_: object, __: object, token: str) -> None:
    if not _TOKEN.match(token):
        raise ValueError("a Telegram bot token looks like 123456789:AA... (ask @BotFather)")


def _check_secret(_: object, __: object, secret: str | None) -> None:
    if secret is not None and not _SECRET.match(secret):
        raise ValueError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")


def _check_webhook_url(_: object, __: object, url: str | None) -> None:
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"the webhook URL must be an http(s) URL, not {url!r}")


@attrs.frozen
class TelegramConfig:
    """Everything a `TelegramChannel` is configured with.

    With `webhook_url` the channel registers that URL (setWebhook) and serves the webhook route at its path;
    otherwise it long-polls getUpdates. `secret_token` (random when not given) is what Telegram must send in
    the X-Telegram-Bot-Api-Secret-Token header. Private chats accept every message; groups follow
    `accept_in_group` and key conversations by `conversation_scope`. While a turn runs the chat shows
    "typing" (from `typing_delay` seconds after the message, so quick answers cost no extra call, then every
    `typing_interval`) and, with `stream`, a preview of the text refreshed every `stream_interval`.
    With `background_after` (seconds), a turn still running after that long becomes a background run: the chat
    gets `background_text` and the run's continuation token at once, previews stop, and the answer is pushed
    when it is done.
    """

    token: str = attrs.field(validator=_check_token, repr=False)
    api_base: str = DEFAULT_API_BASE
    webhook_url: str | None = attrs.field(default=None, validator=_check_webhook_url)
    secret_token: str | None = attrs.field(default=None, validator=_check_secret, repr=False)
    conversation_scope: ConversationScope = attrs.field(default="per_user_per_conversation",
                                                        validator=attrs.validators.in_(SCOPES))  # fmt: skip
    accept_in_group: AcceptInGroup = attrs.field(
        default="mention_only", validator=attrs.validators.in_(ACCEPT_POLICIES)
    )
    commands: tuple[ChatCommand, ...] = attrs.field(default=(), converter=tuple)
    register_commands: bool = True
    tenant: str = DEFAULT_TENANT
    busy_policy: BusyPolicy | None = None
    stream: bool = True
    stream_interval: float = 1.0
    typing_delay: float = 0.3
    typing_interval: float = 4.0
    formatting: Literal["markdown", "plain"] = "markdown"
    limits: SendLimits = SendLimits()
    max_flood_waits: int = 3
    poll_timeout: float = 30.0
    max_file_bytes: int = 20 * 1024 * 1024
    webhook_max_connections: int = 40
    webhook_ack_timeout: float = 30.0
    background_after: float | None = None
    background_text: str = "Working on it: I will send the answer here when it is done."
    start_text: str = (
        "Hello! Send me a message and I will answer. /new starts a fresh conversation, /help lists the commands."
    )

    def __attrs_post_init__(self) -> None:
        names = [c.name for c in self.commands]
        clashes = sorted(set(BUILTIN_COMMANDS).intersection(names) | {n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"command names must be unique and not built-in: {', '.join(clashes)}")
        if not 1 <= self.webhook_max_connections <= 100:
            raise ValueError("webhook_max_connections must be 1-100")
        if self.background_after is not None and self.background_after < 0:
            raise ValueError("background_after must be at least 0 seconds (or None: never)")
        if self.stream_interval <= 0 or self.typing_interval <= 0 or self.typing_delay < 0:
            raise ValueError("stream_interval and typing_interval must be positive, typing_delay not negative")

    @property
    def bot_id(self) -> int:
        """The bot's user id: the number before the colon of the token."""
        return int(self.token.split(":", 1)[0])

    @property
    def webhook_path(self) -> str:
        """The route the webhook is served at: the path of `webhook_url`."""
        path = urlsplit(self.webhook_url).path if self.webhook_url else ""
        return path if path not in ("", "/") else DEFAULT_WEBHOOK_PATH
