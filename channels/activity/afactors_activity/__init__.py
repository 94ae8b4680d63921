"""afactors channel: the Bot Framework Activity protocol (Azure Bot Service: Teams, Web Chat, Direct Line ...).

`ActivityChannel(app_id=..., app_password=...)` in code, or `python -m afactors --activity-app-id ...` with the
secret in $AFACTORS_ACTIVITY_APP_PASSWORD. See docs/channels/activity.md.
"""

from afactors_activity.activity import ConversationRef
from afactors_activity.channel import ActivityChannel
from afactors_activity.config import ActivityConfig
from afactors_activity.plugin import ActivityPlugin, plugin

__all__ = ["ActivityChannel", "ActivityConfig", "ActivityPlugin", "ConversationRef", "plugin"]
