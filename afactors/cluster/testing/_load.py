"""`ConversationLoad`: many conversations, each sending its sequence numbers 1, 2, 3... one turn after the other
(Responses with a fixed `conversation`), with a ledger of every attempt: what was sent where, and what was
acknowledged."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence

import attrs
import httpx
import trio

from afactors.cluster.testing._target import parse_reply

NODE_HEADER = "X-Afactors-Node"
"""The response header naming the node that answered the request (the front proxy's routing shows in it)."""

RETRY_PAUSE = 0.05
"""Seconds a client waits after a request that was not acknowledged."""


@attrs.frozen
class Attempt:
    """One request of a conversation's sequence number `seq`, sent to `entry` at `sent` and ended at `ended`
    (wall clock). `acked`: the client got the completed turn's answer for exactly this `seq`. `answered_by` is the
    node that answered the HTTP request (its `X-Afactors-Node` header, or the node `entry` is), `ran_on` the node
    whose target ran the turn (from the answer)."""

    conversation: str
    seq: int
    entry: str
    sent: float
    ended: float
    acked: bool
    answered_by: str | None = None
    ran_on: str | None = None
    error: str | None = None

    @property
    def forwarded(self) -> bool:
        """The turn ran on another node than the one that answered the request."""
        return self.acked and self.answered_by is not None and self.ran_on != self.answered_by


def conversation_id(prefix: str, n: int) -> str:
    """The id of the `n`th conversation of a load."""
    return f"conv_{prefix}{n:05d}"


@attrs.define(eq=False)
class ConversationLoad:
    """`conversations` clients, each one conversation sending 1, 2, 3... as its turns, one at a time, until `stop`.

    Client `i` sends to `entries()[i % len]` (its own entry, so a node sees the same conversations), or with
    `round_robin` each request to the next entry (a balancer that knows nothing of conversations); after a
    request that was not acknowledged it moves on to the next entry (a client failing over) and the next number: an
    unacknowledged number may or may not have been committed, but never twice nor out of order. `names` maps an
    entry URL to its node's name, for requests the answer does not name the node of. `timeout` is how long a
    client waits for a whole answer before it gives up; `think` the pause between one conversation's turns.
    """

    entries: Callable[[], Sequence[str]]
    conversations: int
    prefix: str = "c"
    timeout: float = 5.0
    think: float = 0.0
    round_robin: bool = False
    names: Mapping[str, str] = attrs.Factory(dict)
    attempts: list[Attempt] = attrs.Factory(list)

    async def run(self, stop: trio.Event) -> None:
        """Run every conversation until `stop` is set (each finishes its request in flight first)."""
        tls = httpx.create_ssl_context()  # made once: each client making its own takes about 50 ms of CPU
        async with trio.open_nursery() as nursery:
            for n in range(self.conversations):
                nursery.start_soon(self._converse, n, stop, tls)

    async def _converse(self, n: int, stop: trio.Event, tls: ssl.SSLContext) -> None:
        # A client (and keep-alive connections) of its own, as a real user has. One client shared by a hundred
        # conversations held single requests for 2 to 5 s in its connection pool (measured with the nodes
        # answering every request within 0.3 s): stalls of the load generator, not of the cluster.
        async with httpx.AsyncClient(timeout=self.timeout, verify=tls) as client:
            await self._turns(client, n, stop)

    async def _turns(self, client: httpx.AsyncClient, n: int, stop: trio.Event) -> None:
        conversation, seq, entry = conversation_id(self.prefix, n), 1, n
        while not stop.is_set():
            choices = self.entries()
            url = choices[entry % len(choices)]
            attempt = await self._send(client, url, conversation, seq)
            self.attempts.append(attempt)
            if self.round_robin or not attempt.acked:
                entry += 1
            seq += 1
            pause = self.think if attempt.acked else max(self.think, RETRY_PAUSE)
            if pause:
                with trio.move_on_after(pause):
                    await stop.wait()

    async def _send(self, client: httpx.AsyncClient, url: str, conversation: str, seq: int) -> Attempt:
        body = {"model": "counting", "input": str(seq), "conversation": conversation}
        sent = time.time()
        sent_to = self.names.get(url)
        response: httpx.Response | None = None
        with trio.move_on_after(self.timeout):  # the whole exchange: a node may keep a slow answer alive with blanks
            try:
                response = await client.post(url + "/v1/responses", json=body)
            except httpx.HTTPError as error:
                return Attempt(conversation, seq, url, sent, time.time(), False, sent_to, error=type(error).__name__)
        if response is None:
            return Attempt(conversation, seq, url, sent, time.time(), False, sent_to, error="timeout")
        ended = time.time()
        answered_by = response.headers.get(NODE_HEADER, sent_to)
        if response.status_code != 200:
            status = f"HTTP {response.status_code}"
            return Attempt(conversation, seq, url, sent, ended, False, answered_by, error=status)
        reply = response.json()
        text = "".join(
            part.get("text", "")
            for item in reply.get("output", [])
            if item.get("type") == "message"
            for part in item.get("content", [])
        )
        parsed = parse_reply(text)
        if reply.get("status") != "completed" or parsed is None or parsed[0] != seq:
            what = f"{reply.get('status')} {reply.get('error') or text[:80]!r}"
            return Attempt(conversation, seq, url, sent, ended, False, answered_by, error=what)
        return Attempt(conversation, seq, url, sent, ended, True, answered_by, parsed[1])
