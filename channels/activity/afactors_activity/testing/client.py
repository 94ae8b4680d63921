"""A wire-level Bot Framework client: Activities built with the `microsoft-agents-activity` models, sent with httpx."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from microsoft_agents.activity import Activity, ChannelAccount, ConversationAccount, Entity, Mention

BOT = ChannelAccount(id="28:bot-app-id", name="Helper")


class BotClient:
    """Plays the Bot Service: `message(...)` builds an Activity, `post(...)` sends it to the bot's endpoint."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, service_url: str, *, channel_id: str = "msteams",
                 bot: ChannelAccount = BOT) -> None:  # fmt: skip
        self.http, self.endpoint, self.service_url = http, endpoint, service_url
        self.channel_id, self.bot = channel_id, bot
        self._ids = itertools.count(1)

    def user(self, n: int = 1) -> ChannelAccount:
        return ChannelAccount(id=f"29:user-{n}", name=f"User {n}", aad_object_id=f"aad-{n}")

    def message(self, text: str, *, user: ChannelAccount | None = None, conversation: str = "a:personal-1",
                conversation_type: str = "personal", mention_bot: bool = False, **fields: Any) -> Activity:  # fmt: skip
        """A message from `user` in `conversation`; with `mention_bot` it @mentions the bot (Teams style)."""
        entities: list[Entity] = list(fields.pop("entities", []))
        if mention_bot:
            tag = f"<at>{self.bot.name}</at>"
            text = f"{tag} {text}"
            entities.append(Mention(mentioned=self.bot, text=tag))
        group = conversation_type != "personal"
        return Activity(
            type=fields.pop("type", "message"),
            id=fields.pop("id", f"msg-{next(self._ids)}"),
            channel_id=fields.pop("channel_id", self.channel_id),
            service_url=fields.pop("service_url", self.service_url),
            from_property=user or self.user(),
            recipient=self.bot,
            conversation=ConversationAccount(
                id=conversation, conversation_type=conversation_type, is_group=group, tenant_id="tenant-1"
            ),
            text=text,
            entities=entities,
            **fields,
        )

    async def post(self, activity: Activity | dict[str, Any], token: str | None = None) -> httpx.Response:
        """POST the Activity JSON (camelCase) with `Authorization: Bearer <token>` when a token is given."""
        body = activity if isinstance(activity, dict) else activity.model_dump(by_alias=True, exclude_none=True,
                                                                               mode="json")  # fmt: skip
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return await self.http.post(self.endpoint, json=body, headers=headers)
