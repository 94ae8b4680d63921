"""The `afactors.channels` entry point: CLI flags and the channel they configure."""

from __future__ import annotations

import argparse
import os

from afactors.channel import Secret
from afactors_telegram.channel import TelegramChannel
from afactors_telegram.config import ACCEPT_POLICIES, DEFAULT_API_BASE, SCOPES, SendLimits, TelegramConfig

TOKEN_ENV = "AFACTORS_TELEGRAM_TOKEN"
SECRET_ENV = "AFACTORS_TELEGRAM_SECRET"
_LIMITS = SendLimits()


class TelegramPlugin:
    """`--telegram-token` (or $AFACTORS_TELEGRAM_TOKEN) turns the channel on; it polls unless a webhook URL is given."""

    name = "telegram"
    needs_credentials = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("telegram channel")
        group.add_argument(
            "--telegram-token", action=Secret, env=TOKEN_ENV, metavar="TOKEN",
            help=f"bot token from @BotFather (default: ${TOKEN_ENV})",
        )  # fmt: skip
        group.add_argument("--telegram-api-base", metavar="URL", default=DEFAULT_API_BASE,
                           help=f"Bot API server (default: {DEFAULT_API_BASE})")  # fmt: skip
        group.add_argument("--telegram-webhook-url", metavar="URL",
                           help="public URL Telegram posts updates to (default: long polling)")  # fmt: skip
        group.add_argument("--telegram-secret", action=Secret, env=SECRET_ENV, metavar="SECRET",
                           help=f"webhook secret, 1-256 of A-Z a-z 0-9 _ - (default: ${SECRET_ENV}, else random "
                           "per start)")  # fmt: skip
        group.add_argument("--telegram-scope", choices=SCOPES, default="per_user_per_conversation",
                           help="how group messages map to conversations")  # fmt: skip
        group.add_argument("--telegram-accept-in-group", choices=ACCEPT_POLICIES, default="mention_only",
                           help="which group messages reach the agent")  # fmt: skip
        group.add_argument("--telegram-chat-rate", type=float, default=_LIMITS.per_chat_per_second, metavar="N",
                           help="messages per second to one chat (default: %(default)s)")  # fmt: skip
        group.add_argument("--telegram-global-rate", type=float, default=_LIMITS.global_per_second, metavar="N",
                           help="messages per second in all (default: %(default)s)")  # fmt: skip

    def create(self, args: argparse.Namespace) -> TelegramChannel | None:
        token = args.telegram_token or os.environ.get(TOKEN_ENV)
        if not token:
            return None
        try:
            config = TelegramConfig(
                token=token,
                api_base=args.telegram_api_base,
                webhook_url=args.telegram_webhook_url,
                secret_token=args.telegram_secret,
                conversation_scope=args.telegram_scope,
                accept_in_group=args.telegram_accept_in_group,
                limits=SendLimits(
                    per_chat_per_second=args.telegram_chat_rate, global_per_second=args.telegram_global_rate
                ),
            )
        except ValueError as error:
            raise SystemExit(f"telegram: {error}") from None
        return TelegramChannel(config)


plugin = TelegramPlugin()
