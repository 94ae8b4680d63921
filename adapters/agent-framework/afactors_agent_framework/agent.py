"""`AgentFrameworkAgent`: an Agent Framework agent (`SupportsAgentRun`) hosted as an afactors `Agent`.

Each turn runs `agent.run(new input, stream=True, session=...)` on the bridge's asyncio loop and streams its
updates as afactors `Update`s. The conversation actor stays the source of truth for history and turn order:
the agent gets the conversation's history through `ActorHistory`, a history provider afactors puts first in
the agent's context providers (so the agent's other context providers see it too), and the Agent Framework
session's own state (context providers' state, a service session id) is kept in the conversation's state,
committed with the turn.

The timer tools (`afactors_agent_framework.timers`) act on the running turn's `ctx.timers`. A turn of kind "timer"
has no new user input: the agent gets its history and, as input, `timer_message(ctx.timer)` (what fired, with
its payload).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import trio
from agent_framework import AgentSession, HistoryProvider, SupportsAgentRun
from agent_framework import Message as AFMessage

from afactors.model import TurnContext, Update
from afactors.targets import TargetError
from afactors_agent_framework.bridge import AsyncioThread, BridgedTarget
from afactors_agent_framework.codec import UpdateMapper, to_af_messages, usage_part
from afactors_agent_framework.timers import timer_message, turn_timers

log = logging.getLogger("afactors.agent_framework")

SESSION_STATE_KEY = "agent_framework.session"
"""Where the Agent Framework session (its state, its service session id) lives in the conversation's state."""

HISTORY_SOURCE_ID = "afactors"
"""The `source_id` of `ActorHistory`."""

PASSED_OPTIONS = ("instructions", "temperature", "top_p", "max_tokens", "model")
"""Turn options (set by the channel) passed on to the agent's run as chat options."""


class ActorHistory(HistoryProvider):
    """Gives the agent the conversation's history as afactors committed it; stores nothing (afactors does)."""

    def __init__(self) -> None:
        super().__init__(HISTORY_SOURCE_ID, load_messages=True, store_inputs=False, store_outputs=False)

    async def get_messages(
        self, session_id: str | None, *, state: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[AFMessage]:
        return list((state or {}).get("messages", ()))

    async def save_messages(
        self,
        session_id: str | None,
        messages: Sequence[AFMessage],
        *,
        state: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        return None


def _check_history_providers(agent: Any) -> None:
    """afactors owns the history: another provider that loads history would feed the agent every turn twice."""
    for provider in getattr(agent, "context_providers", ()):
        if isinstance(provider, HistoryProvider) and provider.load_messages and provider.source_id != HISTORY_SOURCE_ID:
            raise TargetError(
                f"the agent's history provider {provider.source_id!r} loads history, but afactors already gives the "
                "agent the conversation's history; construct it with load_messages=False to mirror each turn to "
                "your own store instead (see docs/targets.md)"
            )


class AgentFrameworkAgent(BridgedTarget):
    """Hosts one Agent Framework agent; enter it (`async with`, the host does) to start its asyncio loop thread."""

    def __init__(self, agent: SupportsAgentRun, *, bridge: AsyncioThread | None = None) -> None:
        _check_history_providers(agent)
        super().__init__(agent, bridge)
        self.agent = agent
        providers = getattr(agent, "context_providers", None)
        self._provides_history = isinstance(providers, list)
        if isinstance(providers, list) and not any(isinstance(p, ActorHistory) for p in providers):
            providers.insert(0, ActorHistory())

    def _session(self, ctx: TurnContext, history: list[AFMessage]) -> AgentSession:
        saved = ctx.state.get(SESSION_STATE_KEY)
        session = AgentSession.from_dict(saved) if saved else self.agent.create_session(session_id=ctx.key.path)
        session.state[HISTORY_SOURCE_ID] = {"messages": history}
        return session

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        inputs = () if ctx.timer is not None else _new_input(ctx)
        history = to_af_messages(ctx.messages[: len(ctx.messages) - len(inputs)])
        af_inputs = to_af_messages(inputs) if ctx.timer is None else [AFMessage("user", [timer_message(ctx.timer)])]
        session = self._session(ctx, history if self._provides_history else [])
        messages = af_inputs if self._provides_history else [*history, *af_inputs]
        options = {k: ctx.options[k] for k in PASSED_OPTIONS if ctx.options.get(k) is not None}
        mapper = UpdateMapper()
        final: list[Any] = []
        token = trio.lowlevel.current_trio_token()

        async def updates() -> AsyncGenerator[Any, None]:
            with turn_timers(ctx, token):  # the timer tools (afactors_agent_framework.timers) act on this turn
                stream = self.agent.run(
                    messages, stream=True, session=session, **({"options": options} if options else {})
                )
                async for update in stream:
                    yield update.contents
                final.append(await stream.get_final_response())

        async with aclosing(self.bridge.stream(updates)) as stream:
            async for contents in stream:
                for update in mapper.add(contents):
                    yield update
        for update in mapper.close():
            yield update
        if final and (usage := usage_part(final[0].usage_details)) is not None:
            yield Update(part=usage)
        session.state.pop(HISTORY_SOURCE_ID, None)
        ctx.state[SESSION_STATE_KEY] = session.to_dict()


def _new_input(ctx: TurnContext) -> tuple[Any, ...]:
    """The turn's new input: the messages after the last assistant/tool message (at least the last one)."""
    messages = ctx.messages
    start = len(messages)
    while start > 0 and messages[start - 1].role in ("user", "system"):
        start -= 1
    return tuple(messages[min(start, len(messages) - 1) :]) if messages else ()
