"""Settings of an Activity channel: bot credentials, inbound auth, outbound allowlist, group behaviour, streaming."""

from __future__ import annotations

from typing import Literal

import attrs

from afactors.channel import DEFAULT_TENANT
from afactors.model import BusyPolicy
from afactors_activity.service_url import check_allowlist_entry

DEFAULT_PATH = "/api/messages"
OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_SERVICE_ISSUER = "https://api.botframework.com"
TOKEN_ENDPOINT = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
TOKEN_SCOPE = "https://api.botframework.com/.default"
DEFAULT_SERVICE_HOSTS: tuple[str, ...] = (
    "botframework.com",  # Web Chat, Direct Line, Slack, ... (https://*.botframework.com)
    "smba.trafficmanager.net",  # Microsoft Teams (commercial)
    "botframework.azure.us",  # US Government clouds
    "smba.infra.gcc.teams.microsoft.com",  # Teams GCC
    "smba.infra.gov.teams.microsoft.us",  # Teams GCC High
)
"""Hosts replies may be posted to unless `service_url_allowlist` says otherwise (a host allows its subdomains)."""

AuthMode = Literal["jwt", "disabled"]
ConversationScope = Literal["per_user_per_conversation", "per_user", "per_conversation"]
SCOPES: tuple[str, ...] = ("per_user_per_conversation", "per_user", "per_conversation")
AcceptInGroup = Literal["mention_only", "all"]
ACCEPT_POLICIES: tuple[str, ...] = ("mention_only", "all")


def _check_allowlist(_: object, __: object, entries: tuple[str, ...]) -> None:
    if not entries:
        raise ValueError("service_url_allowlist is empty: the bot could never answer")
    for entry in entries:
        check_allowlist_entry(entry)


@attrs.frozen
class ActivityConfig:
    """Everything an `ActivityChannel` is configured with.

    `app_id`/`app_password`: the bot's Microsoft Entra app registration. Inbound requests must carry a Bot
    Service JWT (RS256, keys from `openid_metadata_url`, `iss` in `issuers`, `aud == app_id`, `serviceurl`
    equal to the activity's `serviceUrl`) unless `auth="disabled"` is set explicitly (local Emulator use).
    Replies are posted only to a `serviceUrl` on `service_url_allowlist`, with a client-credentials token
    from `token_endpoint` (none when there is no `app_id`). While a turn runs the user sees "typing" (from
    `typing_delay` seconds on, so quick answers cost no extra call, then every `typing_interval`) and, with
    `stream`, the answer as it grows where the channel supports that (Teams 1:1 chats, Web Chat, Direct Line),
    opened by an informative chunk saying `informative_text` (e.g. "Thinking...") when that is set.
    """

    app_id: str | None = None
    app_password: str | None = attrs.field(default=None, repr=False)
    auth: AuthMode = attrs.field(default="jwt", validator=attrs.validators.in_(("jwt", "disabled")))
    path: str = DEFAULT_PATH
    openid_metadata_url: str = OPENID_METADATA_URL
    issuers: tuple[str, ...] = attrs.field(default=(BOT_SERVICE_ISSUER,), converter=tuple)
    clock_skew: float = 300.0
    token_endpoint: str = TOKEN_ENDPOINT
    token_scope: str = TOKEN_SCOPE
    service_url_allowlist: tuple[str, ...] = attrs.field(
        default=DEFAULT_SERVICE_HOSTS, converter=tuple, validator=_check_allowlist
    )
    conversation_scope: ConversationScope = attrs.field(default="per_user_per_conversation",
                                                        validator=attrs.validators.in_(SCOPES))  # fmt: skip
    accept_in_group: AcceptInGroup = attrs.field(default="mention_only",
                                                 validator=attrs.validators.in_(ACCEPT_POLICIES))  # fmt: skip
    tenant: str = DEFAULT_TENANT
    busy_policy: BusyPolicy | None = None
    stream: bool = True
    informative_text: str | None = None
    typing_delay: float = 0.3
    typing_interval: float = 3.0
    welcome_text: str | None = None
    request_timeout: float = 30.0
    keys_ttl: float = 24 * 3600.0

    def __attrs_post_init__(self) -> None:
        if self.auth == "jwt" and not self.app_id:
            raise ValueError("inbound JWT validation needs the bot's app id (or set auth='disabled' explicitly)")
        if self.app_id and not self.app_password:
            raise ValueError("an app id needs its client secret (app_password) to answer")
        if not self.path.startswith("/"):
            raise ValueError(f"the messages path must start with '/', not {self.path!r}")
        if not self.issuers:
            raise ValueError("issuers is empty: no token could ever be accepted")
        if self.clock_skew < 0 or self.typing_delay < 0:
            raise ValueError("clock_skew and typing_delay must not be negative")
        if self.typing_interval <= 0 or self.request_timeout <= 0:
            raise ValueError("typing_interval and request_timeout must be positive")
