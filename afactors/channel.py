"""The channel contract: everything a channel may import from afactors besides `afactors.model`.

A channel (one distribution under `channels/`) parses its protocol into `Envelope`s, hands them to the host
through the `ChannelContext` it is given in `Channel.contribute`, and renders what comes back. It never
imports `afactors.store`, `afactors.actors` or `afactors.host` directly: this module is the whole surface.
"""

from afactors.actors import ActorUnavailable, ConversationBusy, SystemClosed, TurnHandle, new_turn_id
from afactors.host.auth import DEFAULT_TENANT, Unauthorized
from afactors.host.channel import (
    ENTRY_POINT_GROUP,
    Channel,
    ChannelPlugin,
    Command,
    Contribution,
    Deliver,
    Delivery,
    DeliveryFailed,
    HookRejected,
    ResponseHook,
    Route,
    RunHook,
    ServiceTask,
    StartupError,
    installed_plugins,
)
from afactors.host.context import ChannelContext
from afactors.store.records import ResponseRecord as TurnView
from afactors.store.records import ResponseStatus as TurnStatus

__all__ = [
    "DEFAULT_TENANT",
    "ENTRY_POINT_GROUP",
    "ActorUnavailable",
    "Channel",
    "ChannelContext",
    "ChannelPlugin",
    "Command",
    "Contribution",
    "ConversationBusy",
    "Deliver",
    "Delivery",
    "DeliveryFailed",
    "HookRejected",
    "ResponseHook",
    "Route",
    "RunHook",
    "ServiceTask",
    "StartupError",
    "SystemClosed",
    "TurnHandle",
    "TurnStatus",
    "TurnView",
    "Unauthorized",
    "installed_plugins",
    "new_turn_id",
]
