"""Background turns: their live updates kept for any number of watchers, and waiting for their end.

A background turn (accepted by `ChannelContext.start_background`, or recovered from the inbox after a restart)
runs with no caller. Its updates are recorded in a `TurnLog` from its first one, so a client that connects later
gets the stream from the start; waiting for its end joins the live turn (never polls the store).

Must not import: `afactors.host._host` or `afactors.host.context` (they import this).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from afactors.actors import ActorSystem, TurnHandle
from afactors.model import Update


class TurnLog:
    """The updates of one running turn, replayable from the start by any number of watchers."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.done = False
        self._changed = trio.Event()

    def append(self, update: Update) -> None:
        self.updates.append(update)
        self._wake()

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def after(self, sent: int) -> list[Update]:
        """The updates after the first `sent`, once there is one; [] once the turn has ended without more. Safe to
        cancel and call again (a caller waiting with a timeout)."""
        while sent >= len(self.updates) and not self.done:
            await self._changed.wait()
        return self.updates[sent:]

    async def follow(self) -> AsyncIterator[Update]:
        """Every update from the first, then live ones until the turn ends."""
        sent = 0
        while batch := await self.after(sent):
            for update in batch:
                yield update
            sent += len(batch)


class BackgroundTurns:
    """The background turns running on one host, by turn id; their pumps run in `nursery`."""

    def __init__(self, system: ActorSystem, nursery: trio.Nursery) -> None:
        self._system = system
        self._nursery = nursery
        self._logs: dict[str, TurnLog] = {}

    def track(self, turn_id: str, handle: TurnHandle) -> None:
        """Keep the live updates of a background turn (submitted with `stream=True`) until it ends."""
        turn_log = self._logs[turn_id] = TurnLog()

        async def pump() -> None:
            try:
                async for update in handle.updates():
                    turn_log.append(update)
                await handle.reply()
            finally:
                turn_log.close()
                self._logs.pop(turn_id, None)

        self._nursery.start_soon(pump)

    def track_recovered(self) -> None:
        """Track the background turns the system replays from the inbox, each when its conversation activates
        (before it starts; call this before the system starts any)."""
        self._system.on_recovered = self._recovered

    def _recovered(self, turn_id: str) -> None:
        record = self._system.record(turn_id)
        if turn_id in self._logs or record is None or not record.background:
            return
        handle = self._system.join(turn_id, stream=True)
        if handle is not None:
            self.track(turn_id, handle)

    def log(self, turn_id: str) -> TurnLog | None:
        """The update log of a tracked turn; None when it is not running here."""
        return self._logs.get(turn_id)

    def watch(self, turn_id: str) -> AsyncIterator[Update] | None:
        """Replay-then-follow the updates of a tracked turn; None when it is not running here."""
        turn_log = self._logs.get(turn_id)
        return None if turn_log is None else turn_log.follow()

    def holds(self, turn_id: str) -> bool:
        """Whether this host runs the turn (tracked here, or queued, running or to be recovered by its system)."""
        return turn_id in self._logs or self._system.pending(turn_id) is not None

    def progress(self) -> dict[str, int]:
        """How many updates each running background turn has produced so far, by turn id."""
        return {turn_id: len(turn_log.updates) for turn_id, turn_log in self._logs.items()}

    async def ended(self, turn_id: str) -> bool:
        """Wait until the turn has ended; False at once when neither this host nor its system holds it."""
        turn_log = self._logs.get(turn_id)
        if turn_log is not None:
            async for _ in turn_log.follow():
                pass
            return True
        handle = self._system.join(turn_id)
        if handle is None:
            return False
        await handle.reply()
        return True
