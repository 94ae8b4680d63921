"""A deterministic agent for tests and demos, keyed on the text of the last user message, so that protocol states
can be driven from outside (`--target afactors_a2a.testing:scripted`). Not used by the channel itself.

| message text starts with | the turn                                                                        |
|--------------------------|---------------------------------------------------------------------------------|
| `delayed [seconds]`      | says "Working", waits (default 0.3 s), then "done: <text>"                      |
| `hang`                   | says "Thinking" and waits until cancelled                                        |
| `stream <n>`             | streams n chunks `c1 c2 ...`                                                    |
| `input-required`         | asks "What is your name?" and ends input-required; the answer completes it      |
| `auth-required`          | asks the user to sign in and ends auth-required                                 |
| `reject`                 | answers "I will not do that." and ends rejected                                 |
| `fail`                   | raises (the turn fails after its one retry)                                     |
| `artifact-file`          | a file part `hello.txt` (text/plain bytes)                                      |
| `artifact-file-url`      | a file part by URL                                                              |
| `artifact-data`          | a JSON data part                                                                |
| anything else            | "Turn <n>: <text>" (n counts the user messages of the conversation)             |
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import trio

from afactors.model import DataPart, TurnContext, Update, UriPart
from afactors_a2a.tasks import requested_state, task_state_part

QUESTION = "What is your name?"


def _asked_for_input(ctx: TurnContext) -> bool:
    """Whether the previous answer of the conversation ended input-required."""
    if len(ctx.messages) < 2 or ctx.messages[-2].role != "assistant":
        return False
    return any(requested_state(part) == "TASK_STATE_INPUT_REQUIRED" for part in ctx.messages[-2].contents)


class ScriptedAgent:
    """See the module docstring. `delay` is the default wait of `delayed`."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        text = ctx.messages[-1].text.strip()
        word, _, rest = text.partition(" ")
        if _asked_for_input(ctx):
            yield Update(delta=f"Nice to meet you, {text}.")
        elif word == "delayed":
            yield Update(delta="Working")
            await trio.sleep(float(rest) if rest.replace(".", "", 1).isdigit() else self.delay)
            yield Update(delta=f", done: {text}")
        elif word == "hang":
            yield Update(delta="Thinking")
            await trio.sleep_forever()
        elif word == "stream":
            for n in range(1, int(rest) + 1):
                yield Update(delta=f"c{n} ")
                await trio.lowlevel.checkpoint()
        elif word in ("input-required", "auth-required", "reject"):
            said = {
                "input-required": QUESTION,
                "auth-required": "Please sign in first.",
                "reject": "I will not do that.",
            }
            yield Update(delta=said[word])
            yield Update(part=task_state_part("rejected" if word == "reject" else word))  # type: ignore[arg-type]
        elif word == "fail":
            raise RuntimeError("scripted failure")
        elif word == "artifact-file":
            yield Update(part=DataPart(b"hello file", "text/plain", "hello.txt"))
        elif word == "artifact-file-url":
            yield Update(part=UriPart("https://example.com/report.pdf", "application/pdf", "report.pdf"))
        elif word == "artifact-data":
            yield Update(part=DataPart(orjson.dumps({"answer": 42, "items": [1, 2]}), "application/json"))
        else:
            turn = sum(message.role == "user" for message in ctx.messages)
            yield Update(delta=f"Turn {turn}: ")
            yield Update(delta=text)


scripted = ScriptedAgent()
"""The instance `--target afactors_a2a.testing:scripted` hosts."""
