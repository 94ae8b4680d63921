"""A fake Telegram Bot API server for tests (trio): ``async with open_fake_bot_api() as fake:``.

See docs/channels/telegram-fake.md.
"""

from afactors_telegram.testing.fake import DEFAULT_TOKEN, FakeBotApi, ManualClock, open_fake_bot_api
from afactors_telegram.testing.images import make_png
from afactors_telegram.testing.model import CallbackAnswer, CallRecord, Chat, ChatAction, Draft, Edit, User
from afactors_telegram.testing.ratelimit import RateLimits
from afactors_telegram.testing.webhook import SECRET_HEADER, WebhookPolicy

__all__ = [
    "DEFAULT_TOKEN",
    "SECRET_HEADER",
    "CallRecord",
    "CallbackAnswer",
    "Chat",
    "ChatAction",
    "Draft",
    "Edit",
    "FakeBotApi",
    "ManualClock",
    "RateLimits",
    "User",
    "WebhookPolicy",
    "make_png",
    "open_fake_bot_api",
]
