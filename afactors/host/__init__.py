"""The host: channels, HTTP server, auth and shutdown around an actor system.

Public surface: `open_host` (with `HostConfig`, `RetentionConfig`), `Host` (`host.push` -> `PushResult`, or
`RoutingError`), `ApiKeys`, `Timers` (`host.timers`), and
the channel contract's names (re-exported from `afactors.channel`, where channels import them).
"""

from afactors.channel import (
    DEFAULT_TENANT,
    ENTRY_POINT_GROUP,
    Channel,
    ChannelContext,
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
    Unauthorized,
    installed_plugins,
)
from afactors.host._auth import ApiKeys, tenant_of_key
from afactors.host._delivery import DeliveryPolicy
from afactors.host._host import Host, HostConfig, open_host
from afactors.host._push import PushResult
from afactors.host._retention import RetentionConfig
from afactors.host._routing import RoutingError
from afactors.host._server import ServerLimits
from afactors.host._timers import Timers

__all__ = [
    "DEFAULT_TENANT",
    "ENTRY_POINT_GROUP",
    "ApiKeys",
    "Channel",
    "ChannelContext",
    "ChannelPlugin",
    "Command",
    "Contribution",
    "Deliver",
    "Delivery",
    "DeliveryFailed",
    "DeliveryPolicy",
    "HookRejected",
    "Host",
    "HostConfig",
    "PushResult",
    "RetentionConfig",
    "RoutingError",
    "ResponseHook",
    "Route",
    "RunHook",
    "ServerLimits",
    "StartupError",
    "Timers",
    "Unauthorized",
    "installed_plugins",
    "open_host",
    "tenant_of_key",
]
