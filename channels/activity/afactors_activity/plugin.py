"""The `afactors.channels` entry point: CLI flags (secrets also from the environment) and the channel they configure."""

from __future__ import annotations

import argparse
import os

from afactors.channel import Secret
from afactors_activity.channel import ActivityChannel
from afactors_activity.config import (
    ACCEPT_POLICIES,
    DEFAULT_PATH,
    OPENID_METADATA_URL,
    SCOPES,
    TOKEN_ENDPOINT,
    ActivityConfig,
)

APP_ID_ENV = "AFACTORS_ACTIVITY_APP_ID"
APP_PASSWORD_ENV = "AFACTORS_ACTIVITY_APP_PASSWORD"


class ActivityPlugin:
    """`--activity-app-id` with its secret (or `--activity-auth disabled` for local use) turns the channel on."""

    name = "activity"
    needs_credentials = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("activity channel (Azure Bot Service: Teams, Web Chat, Direct Line)")
        group.add_argument(
            "--activity-app-id", metavar="ID", help=f"the bot's Microsoft Entra app id (default: ${APP_ID_ENV})"
        )
        group.add_argument(
            "--activity-app-password",
            action=Secret,
            env=APP_PASSWORD_ENV,
            metavar="SECRET",
            help=f"the app's client secret (default: ${APP_PASSWORD_ENV}; prefer the variable)",
        )
        group.add_argument(
            "--activity-auth",
            choices=("jwt", "disabled"),
            default="jwt",
            help="inbound token checks; 'disabled' only for the local Emulator/Playground",
        )
        group.add_argument(
            "--activity-path",
            default=DEFAULT_PATH,
            metavar="PATH",
            help="the messaging endpoint's path (default: %(default)s)",
        )
        group.add_argument(
            "--activity-openid-metadata",
            default=OPENID_METADATA_URL,
            metavar="URL",
            help="OpenID metadata naming the keys inbound tokens are signed with",
        )
        group.add_argument(
            "--activity-issuer",
            action="append",
            metavar="ISS",
            help="a trusted token issuer (repeatable; default: https://api.botframework.com)",
        )
        group.add_argument(
            "--activity-token-endpoint",
            default=TOKEN_ENDPOINT,
            metavar="URL",
            help="where the bot's outbound token comes from (single-tenant bots: their tenant's)",
        )
        group.add_argument(
            "--activity-allow-service-url",
            action="append",
            metavar="HOST_OR_ORIGIN",
            help="a serviceUrl host or origin replies may go to (repeatable; default: Bot Service hosts)",
        )
        group.add_argument(
            "--activity-scope",
            choices=SCOPES,
            default="per_user_per_conversation",
            help="how group chats and Teams channels map to conversations",
        )
        group.add_argument(
            "--activity-accept-in-group",
            choices=ACCEPT_POLICIES,
            default="mention_only",
            help="which group messages reach the agent",
        )
        group.add_argument("--activity-welcome", metavar="TEXT", help="greeting sent when the bot is added")
        group.add_argument(
            "--activity-informative",
            metavar="TEXT",
            help="status shown when a streamed answer starts (e.g. 'Thinking...')",
        )
        group.add_argument("--activity-no-stream", action="store_true", help="send only final messages, never stream")

    def create(self, args: argparse.Namespace) -> ActivityChannel | None:
        app_id = args.activity_app_id or os.environ.get(APP_ID_ENV)
        if not app_id and args.activity_auth != "disabled":
            return None
        settings: dict[str, object] = {}
        if args.activity_issuer:
            settings["issuers"] = tuple(args.activity_issuer)
        if args.activity_allow_service_url:
            settings["service_url_allowlist"] = tuple(args.activity_allow_service_url)
        try:
            config = ActivityConfig(
                app_id=app_id or None,
                app_password=args.activity_app_password or os.environ.get(APP_PASSWORD_ENV) or None,
                auth=args.activity_auth,
                path=args.activity_path,
                openid_metadata_url=args.activity_openid_metadata,
                token_endpoint=args.activity_token_endpoint,
                conversation_scope=args.activity_scope,
                accept_in_group=args.activity_accept_in_group,
                welcome_text=args.activity_welcome,
                stream=not args.activity_no_stream,
                informative_text=args.activity_informative,
                **settings,  # type: ignore[arg-type]
            )
        except ValueError as error:
            raise SystemExit(f"activity: {error}") from None
        return ActivityChannel(config)


plugin = ActivityPlugin()
