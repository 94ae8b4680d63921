"""The host: channels, HTTP server, auth and shutdown around an actor system."""

from afactors.host.auth import DEFAULT_TENANT, ApiKeys, Unauthorized
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
    StartupError,
    installed_plugins,
)
from afactors.host.context import ChannelContext
from afactors.host.host import Host, open_host

__all__ = [
    "DEFAULT_TENANT", "ENTRY_POINT_GROUP", "ApiKeys", "Channel", "ChannelContext", "ChannelPlugin", "Command",
    "Contribution", "Deliver", "Delivery", "DeliveryFailed", "HookRejected", "Host", "ResponseHook", "Route", "RunHook", "StartupError", "Unauthorized", "installed_plugins",
    "open_host",
]
