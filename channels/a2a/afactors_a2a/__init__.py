"""afactors channel: A2A 1.0 over JSON-RPC (with v0.3 compatibility): agent card, tasks, streams, push.

`plugin` is what the `afactors.channels` entry point names; embed with `A2AChannel()`. A target ends a turn in
another task state than completed by yielding `Update(part=task_state_part("input-required"))`.
"""

from afactors_a2a.card import CardSettings, Skill
from afactors_a2a.channel import A2AChannel, A2APlugin, plugin
from afactors_a2a.tasks import TASK_STATE_MEDIA_TYPE, task_state_part

__all__ = ["TASK_STATE_MEDIA_TYPE", "A2AChannel", "A2APlugin", "CardSettings", "Skill", "plugin", "task_state_part"]
