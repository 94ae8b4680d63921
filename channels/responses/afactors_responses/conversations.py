"""The Conversations API routes (`/v1/conversations...`), beside the Responses routes they share a channel with.

A conversation is the actor `conversation=<id>` on a response runs in: items added here are committed to its
history through its mailbox ("append" envelopes, ordered with its turns), its turns list as items, item deletion
("revise") and conversation deletion ("clear") go through the mailbox as well. The conversation's own record
(created_at, metadata, a deleted mark) is a channel alias. Tenants (API key, isolation header) see only their own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import Response, request

from afactors.channel import ChannelContext, CommittedTurn, new_turn_id
from afactors.model import ConversationKey, Envelope, Message, Reply
from afactors_responses.codec.conversation import (
    added_items,
    conversation_items,
    parse_add_items,
    parse_create_conversation,
    parse_update_conversation,
    render_conversation,
    without_item,
)
from afactors_responses.codec.errors import ApiError
from afactors_responses.codec.request import INCLUDE_ENCRYPTED_REASONING, InputItem, resolve_input
from afactors_responses.codec.response import items_page, parse_page_query
from afactors_responses.http import check_method, json_response, read_json

View = Callable[..., Awaitable[Response]]

REVISE_ATTEMPTS = 5
"""How often an item deletion re-reads its turn when a turn of the conversation changed it meanwhile."""


def conversation_key(tenant: str, conversation: str) -> ConversationKey:
    """The actor of a conversation id: the same for `conversation=` on a response and the Conversations API."""
    return ConversationKey(tenant, "conv:" + conversation)


def conversation_alias(tenant: str, conversation: str) -> str:
    """The channel alias holding a conversation's own record (created_at, metadata, deleted)."""
    return f"conversation/{tenant}/{conversation}"


def _not_found(conversation: str) -> ApiError:
    return ApiError(404, f"Conversation with id '{conversation}' not found.", param=None, code=None)


class ConversationRoutes:
    """The Conversations views of one Responses channel."""

    def __init__(
        self,
        ctx: ChannelContext,
        tenant: Callable[[], str],
        lookup_item: Callable[[str, ConversationKey | None], Callable[[str], Message | None]],
    ) -> None:
        self.ctx = ctx
        self.tenant = tenant
        self.lookup_item = lookup_item

    def table(self) -> list[tuple[str, View]]:
        return [
            ("/conversations", self.create),
            ("/conversations/<conversation_id>", self.one),
            ("/conversations/<conversation_id>/items", self.items),
            ("/conversations/<conversation_id>/items/<item_id>", self.item),
        ]

    # -- helpers ---------------------------------------------------------------------------------------------

    def _existing(self, tenant: str, conversation: str) -> dict[str, Any]:
        """The conversation's record; one only ever used through `conversation=` exists once it has turns."""
        if len(conversation) > 256:
            raise _not_found(conversation[:64] + "...")
        record = self.ctx.alias(conversation_alias(tenant, conversation))
        if record is None:
            turns = self.ctx.turns(conversation_key(tenant, conversation))
            if not turns:
                raise _not_found(conversation)
            return {"created_at": turns[0].created_at, "metadata": {}}
        if record.get("deleted"):
            raise _not_found(conversation)
        return record

    async def _edit(self, envelope: Envelope) -> Reply:
        """Run a history edit in the conversation's mailbox, after whatever is queued there (never refused as busy,
        never interrupting a turn, whatever the host's busy policy)."""
        handle = await self.ctx.submit(attrs.evolve(envelope, busy_policy="enqueue"))
        return await handle.reply()

    def _resolved(self, tenant: str, conversation: str, items: tuple[InputItem, ...]) -> tuple[Message, ...]:
        """The items as messages, item references resolved (a 400 for an unknown one)."""
        return resolve_input(items, self.lookup_item(tenant, conversation_key(tenant, conversation)))

    async def _append(self, tenant: str, conversation: str, messages: tuple[Message, ...]) -> str:
        """Commit `messages` as one turn of the conversation (through its mailbox); returns the turn's id."""
        turn_id = new_turn_id("resp_")
        key = conversation_key(tenant, conversation)
        _raise_failed(await self._edit(Envelope(key, messages, kind="append", turn_id=turn_id)))
        return turn_id

    @staticmethod
    def _encrypted() -> bool:
        return INCLUDE_ENCRYPTED_REASONING in request.args.getlist("include")

    # -- POST /conversations -----------------------------------------------------------------------------

    async def create(self) -> Response:
        check_method(("POST",))
        tenant = self.tenant()
        body = parse_create_conversation(await read_json())
        conversation = new_turn_id("conv_")
        messages = self._resolved(tenant, conversation, body.items)  # refused before anything is stored
        record = {"created_at": time.time(), "metadata": body.metadata or {}}
        await self.ctx.set_alias(conversation_alias(tenant, conversation), record)
        if messages:
            await self._append(tenant, conversation, messages)
        return json_response(render_conversation(conversation, record))

    # -- GET / POST / DELETE /conversations/{id} ---------------------------------------------------------

    async def one(self, conversation_id: str) -> Response:
        check_method(("GET", "POST", "DELETE"))
        tenant = self.tenant()
        record = self._existing(tenant, conversation_id)
        alias = conversation_alias(tenant, conversation_id)
        if request.method == "POST":
            record = {**record, "metadata": parse_update_conversation(await read_json())}
            await self.ctx.set_alias(alias, record)
        elif request.method == "DELETE":
            await self.ctx.set_alias(alias, {**record, "deleted": True})  # first: no new turn may start on it
            _raise_failed(await self._edit(Envelope(conversation_key(tenant, conversation_id), kind="clear")))
            return json_response({"id": conversation_id, "object": "conversation.deleted", "deleted": True})
        return json_response(render_conversation(conversation_id, record))

    # -- GET / POST /conversations/{id}/items ------------------------------------------------------------

    async def items(self, conversation_id: str) -> Response:
        check_method(("GET", "POST"))
        tenant = self.tenant()
        self._existing(tenant, conversation_id)
        if request.method == "POST":
            messages = self._resolved(tenant, conversation_id, parse_add_items(await read_json()))
            turn_id = await self._append(tenant, conversation_id, messages)
            return json_response(added_items(turn_id, messages, encrypted=self._encrypted()))
        query = parse_page_query(dict(request.args))
        turns = self.ctx.turns(conversation_key(tenant, conversation_id))
        return json_response(items_page(conversation_items(turns, encrypted=self._encrypted()), query, "here"))

    # -- GET / DELETE /conversations/{id}/items/{item_id} ------------------------------------------------

    async def item(self, conversation_id: str, item_id: str) -> Response:
        check_method(("GET", "DELETE"))
        tenant = self.tenant()
        record = self._existing(tenant, conversation_id)
        key = conversation_key(tenant, conversation_id)
        if request.method == "GET":
            for found in conversation_items(self.ctx.turns(key), encrypted=self._encrypted()):
                if found["id"] == item_id:
                    return json_response(found)
            raise _item_not_found(item_id)
        for _ in range(REVISE_ATTEMPTS):
            turn, seq, revised = _revision(self.ctx.turns(key), item_id)
            reply = await self._edit(
                Envelope(
                    key,
                    revised[0],
                    kind="revise",
                    options={
                        "seq": seq,
                        "base": _unstructured(turn),
                        "output": _unstructured_messages(revised[1]),
                    },
                )
            )
            if reply.error is None or reply.error.code != "conflict":
                _raise_failed(reply)
                return json_response(render_conversation(conversation_id, record))
        raise ApiError(409, "The conversation kept changing; retry the deletion.", code="conflict")


def _revision(
    turns: list[CommittedTurn], item: str
) -> tuple[CommittedTurn, int, tuple[tuple[Message, ...], tuple[Message, ...]]]:
    for turn in turns:
        revised = without_item(turn, item)
        if revised is not None:
            return turn, turn.seq, revised
    raise _item_not_found(item)


def _unstructured(turn: CommittedTurn) -> dict[str, Any]:
    from afactors.model import converter

    return converter.unstructure({"input": turn.input, "output": turn.output})  # type: ignore[no-any-return]


def _unstructured_messages(messages: tuple[Message, ...]) -> list[Any]:
    from afactors.model import converter

    return converter.unstructure(messages, tuple[Message, ...])  # type: ignore[no-any-return]


def _item_not_found(item: str) -> ApiError:
    return ApiError(404, f"Item with id '{item}' not found.", param=None, code=None)


def _raise_failed(reply: Reply) -> None:
    if reply.status != "completed":
        message = reply.error.message if reply.error is not None else "the change could not be made"
        raise ApiError(500, f"The conversation could not be changed: {message}", type="server_error")
