"""Running one `tools/call`: the agent's turn, its text as progress, its end as the tool result.

A call runs in the channel's own nursery, not in the HTTP request, so a client that loses the response stream
can resume it (`GET` with `Last-Event-ID`) while the turn goes on. Everything the call says goes into its
session's `EventLog`; the POST that started it and any resuming GET only follow that log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from afactors.channel import (
    ActorUnavailable,
    ChannelContext,
    ConversationBusy,
    HookRejected,
    StoreFull,
    SystemClosed,
)
from afactors.model import BusyPolicy, ConversationKey, Envelope, Identity, Message, Reply
from afactors_mcp.jsonrpc import RequestId, notification_body, result_body
from afactors_mcp.protocol import ToolCall, call_result, progress_params
from afactors_mcp.sessions import Call, EventLog, Session

log = logging.getLogger("afactors.mcp")

CONVERSATION_PREFIX = "mcp/"


def conversation_key(tenant: str, session_id: str) -> ConversationKey:
    """The conversation actor a tool `session_id` selects within a tenant."""
    return ConversationKey(tenant, CONVERSATION_PREFIX + session_id)


def failure_text(reply: Reply) -> str | None:
    """What a tool caller reads when a turn did not complete; None for a completed turn."""
    if reply.status == "completed":
        return None
    if reply.error is not None:
        return f"The agent failed: {reply.error.message}"
    return f"The agent's turn ended {reply.status}."


def refusal_text(exc: Exception) -> str | None:
    """What a tool caller reads when its turn was not accepted; None for an exception that is a bug."""
    if isinstance(exc, HookRejected):
        return f"Refused: {exc.message}"
    if isinstance(exc, ConversationBusy):
        return "This conversation is already answering another call; retry when it has finished."
    if isinstance(exc, ActorUnavailable | SystemClosed):
        return "The agent is not available right now (the server is busy or shutting down); retry shortly."
    if isinstance(exc, StoreFull):
        return "The server cannot take new turns right now (the disk holding its state is full); retry later."
    return None


async def run_call(
    ctx: ChannelContext,
    session: Session,
    request_id: RequestId,
    call: Call,
    parsed: ToolCall,
    stream: EventLog,
    busy_policy: BusyPolicy | None,
    finish: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> None:
    """Run the turn of one tool call, writing its progress and result to `stream`, then close the stream.

    `finish` completes a result for its revision. A call the client cancelled gets no result, as the spec asks.
    """
    session_id = parsed.session_id or session.conversation
    envelope = Envelope(
        key=conversation_key(session.tenant, session_id),
        input=(Message("user", parsed.prompt),),
        options={"session_id": session_id},
        identity=Identity(ctx.name, session_id),
        busy_policy=busy_policy,
    )
    try:
        try:
            handle = await ctx.submit(envelope, stream=True)
        except Exception as exc:
            text = refusal_text(exc)
            if text is None:  # a bug must not take the channel's nursery (and every other call) down
                log.exception("mcp: submitting a tool call failed")
                text = "The server failed to start the agent's turn."
            result = call_result(text, session_id, session.version, is_error=True)
            stream.append(result_body(request_id, finish(result)))
            return
        call.handle = handle
        if call.cancelled:  # cancelled while it was being submitted
            await ctx.abandon(handle)
        progress = 0
        async for update in handle.updates():
            if update.delta and parsed.progress_token is not None and not call.cancelled:
                progress += len(update.delta)
                params = progress_params(parsed.progress_token, progress, update.delta)
                stream.append(notification_body("notifications/progress", params))
        reply = await ctx.reply(envelope, handle)
        if call.cancelled:
            return
        failure = failure_text(reply)
        result = call_result(failure or reply.text, session_id, session.version, is_error=failure is not None)
        stream.append(result_body(request_id, finish(result)))
    finally:
        stream.close()
        session.calls.pop(request_id, None)


async def cancel_call(ctx: ChannelContext, call: Call) -> None:
    """Stop a call: its turn is cancelled (nothing of it is committed) and it will send no result."""
    call.cancelled = True
    if call.handle is not None:
        await ctx.abandon(call.handle)
