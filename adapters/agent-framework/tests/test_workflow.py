"""Workflow targets: turns run the workflow, requests pause it, the next message resumes it from its checkpoint."""

from __future__ import annotations

import pytest
import trio
from agent_framework import InMemoryCheckpointStorage

from afactors.host import Host
from afactors.model import ConversationKey
from afactors.targets import TargetError, as_agent
from afactors_agent_framework import WorkflowAgent
from afactors_agent_framework.workflow import WORKFLOW_STATE_KEY

from .conftest import ServeResponses
from .flows import approval_builder


async def test_a_request_pauses_the_turn_and_the_next_message_resumes_the_workflow(
    serve_responses: ServeResponses,
) -> None:
    async with serve_responses(approval_builder()) as (host, sdk):
        asked = await sdk.responses.create(model="m", input="a poem", conversation="c1")
        assert asked.status == "completed" and asked.output_text == "Approve 'draft of a poem'? (yes/no)"
        path = "default/conv:c1"
        paused = host.store.get("snapshots", path).state[WORKFLOW_STATE_KEY]
        assert host.system.target_record(path, paused["checkpoint_id"]) is not None
        unclear = await sdk.responses.create(model="m", input="perhaps", conversation="c1")
        assert "could not use that answer: answer yes or no" in unclear.output_text  # still paused
        stream = await sdk.responses.create(model="m", input="yes", conversation="c1", stream=True)
        deltas = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
        assert deltas == "approved: draft of a poem"
        assert WORKFLOW_STATE_KEY not in host.store.get("snapshots", path).state  # done: the next message starts anew
        again = await sdk.responses.create(model="m", input="a song", conversation="c1")
        assert again.output_text == "Approve 'draft of a song'? (yes/no)"


@pytest.mark.parametrize("shared_instance", [False, True])
async def test_conversations_keep_their_own_checkpoints(serve_responses: ServeResponses, shared_instance: bool) -> None:
    target = approval_builder().build() if shared_instance else approval_builder()
    async with serve_responses(target) as (host, sdk):
        for name, text in (("c1", "a poem"), ("c2", "a song")):
            await sdk.responses.create(model="m", input=text, conversation=name)
        second = await sdk.responses.create(model="m", input="no", conversation="c2")
        first = await sdk.responses.create(model="m", input="yes", conversation="c1")
        assert (first.output_text, second.output_text) == ("approved: draft of a poem", "rejected: draft of a song")
        for name, other in (("c1", "c2"), ("c2", "c1")):
            mine = {key for key, _ in host.system.target_records(f"default/conv:{name}")}
            theirs = {key for key, _ in host.system.target_records(f"default/conv:{other}")}
            assert mine and not mine & theirs


def test_a_workflow_with_its_own_checkpoint_storage_is_refused_at_startup() -> None:
    with pytest.raises(TargetError, match="own checkpoint storage"):
        as_agent(approval_builder(checkpoint_storage=InMemoryCheckpointStorage()))
    with pytest.raises(TargetError, match="own checkpoint storage"):
        as_agent(approval_builder(checkpoint_storage=InMemoryCheckpointStorage()).build())
    assert isinstance(as_agent(approval_builder()), WorkflowAgent)


async def outputs(host: Host, key: ConversationKey, n: int) -> list[str]:
    """The conversation's reply texts once it has `n` turns and nothing queued."""
    with trio.fail_after(10):
        while len(turns := host.store.scan("turns", key.path + "/")) < n or host.store.count("inbox"):
            await trio.sleep(0.01)
    return [turn.output[0].text for _, turn in turns]


async def test_a_timer_turn_starts_the_workflow_and_is_no_answer_to_its_request(
    serve_responses: ServeResponses,
) -> None:
    async with serve_responses(approval_builder()) as (host, sdk):
        key = ConversationKey("default", "conv:c1")
        await host.timers.schedule(key, after=0, id="t1", payload={"note": "a poem"})
        [asked] = await outputs(host, key, 1)
        assert asked.startswith("Approve 'draft of [timer] A timer you scheduled is due now: ")
        assert '"payload":{"note":"a poem"}' in asked
        await host.timers.schedule(key, after=0, id="t2")
        assert (await outputs(host, key, 2))[1] == asked  # still waiting: the same request again
        answered = await sdk.responses.create(model="m", input="yes", conversation="c1")
        assert answered.output_text.startswith("approved: draft of [timer]")
