"""`ConversationCheckpoints`: Agent Framework's `CheckpointStorage` protocol over one conversation's records.

Checkpoints live in the afactors store (kind `checkpoints`, keyed by conversation), one record per checkpoint:
`{"workflow_name", "timestamp", "checkpoint"}` with the checkpoint encoded by Agent Framework's own checkpoint
encoding. A turn's saves are staged on `TurnContext.records` and committed in the same transaction as the turn,
so a checkpoint never outlives a turn that did not commit, and a committed turn never lacks its checkpoints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent_framework import WorkflowCheckpoint, WorkflowCheckpointException
from agent_framework._workflows._checkpoint_encoding import decode_checkpoint_value, encode_checkpoint_value

from afactors.model import TurnRecords

KEEP = 16
"""Checkpoints kept per conversation after a turn (older ones are deleted in the turn's commit)."""


class ConversationCheckpoints:
    """The checkpoints of one conversation as one turn sees them (construct it on the turn's trio task).

    The committed checkpoints are read once, up front; the methods then work in memory and stage every write
    on `records`, so they are safe to call from the asyncio loop thread the workflow runs on.
    """

    def __init__(self, records: TurnRecords) -> None:
        self._records = records
        self._items: dict[str, dict[str, Any]] = dict(records.items())

    def _entries(self, workflow_name: str) -> list[tuple[str, dict[str, Any]]]:
        found = [(key, value) for key, value in self._items.items() if value.get("workflow_name") == workflow_name]
        return sorted(found, key=lambda item: datetime.fromisoformat(item[1]["timestamp"]))

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        value = {
            "workflow_name": checkpoint.workflow_name,
            "timestamp": checkpoint.timestamp,
            "checkpoint": encode_checkpoint_value(checkpoint.to_dict()),
        }
        self._items[checkpoint.checkpoint_id] = value
        self._records.put(checkpoint.checkpoint_id, value)
        return checkpoint.checkpoint_id

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        value = self._items.get(checkpoint_id)
        if value is None:
            raise WorkflowCheckpointException(f"No checkpoint found with ID {checkpoint_id}")
        return _decode(value)

    async def list_checkpoints(self, *, workflow_name: str) -> list[WorkflowCheckpoint]:
        return [_decode(value) for _, value in self._entries(workflow_name)]

    async def list_checkpoint_ids(self, *, workflow_name: str) -> list[str]:
        return [key for key, _ in self._entries(workflow_name)]

    async def delete(self, checkpoint_id: str) -> bool:
        if self._items.pop(checkpoint_id, None) is None:
            return False
        self._records.delete(checkpoint_id)
        return True

    async def get_latest(self, *, workflow_name: str) -> WorkflowCheckpoint | None:
        entries = self._entries(workflow_name)
        return _decode(entries[-1][1]) if entries else None

    def latest_id(self) -> str | None:
        """The newest checkpoint of any workflow name (the one a paused turn resumes from)."""
        if not self._items:
            return None
        return max(self._items.items(), key=lambda item: datetime.fromisoformat(item[1]["timestamp"]))[0]

    def prune(self, keep: int = KEEP) -> None:
        """Stage the deletion of all but the newest `keep` checkpoints."""
        ordered = sorted(self._items.items(), key=lambda item: datetime.fromisoformat(item[1]["timestamp"]))
        for key, _ in ordered[: max(0, len(ordered) - keep)]:
            del self._items[key]
            self._records.delete(key)


def _decode(value: dict[str, Any]) -> WorkflowCheckpoint:
    return WorkflowCheckpoint.from_dict(decode_checkpoint_value(value["checkpoint"]))
