"""The identity service: who a sender is across channels (durable isolation keys), one-time-code linking,
last seen, and the conversation a person's sessions continue. A host service beside the actor system.

Must not import: `afactors.actors`, `afactors.channel`, `afactors.host` (they sit above it).
"""

from afactors.identity._authz import (
    AllOf,
    AllowAll,
    Allowed,
    Allowlist,
    AnyOf,
    AuthContext,
    CallableAllowlist,
    ChannelAuth,
    ChannelConfigurationError,
    Decision,
    Denied,
    LinkedClaimAllowlist,
    LinkRequired,
    NativeIdAllowlist,
    Outcome,
    decide,
    effective,
    validate,
)
from afactors.identity._errors import IdentityRefused, LinkFailed
from afactors.identity._service import REFUSED_TEXT, IdentityConfig, IdentityService, LinkCode, Resolved, Resolver

__all__ = [
    "AllOf",
    "AllowAll",
    "Allowed",
    "Allowlist",
    "AnyOf",
    "AuthContext",
    "CallableAllowlist",
    "ChannelAuth",
    "ChannelConfigurationError",
    "Decision",
    "Denied",
    "LinkRequired",
    "LinkedClaimAllowlist",
    "NativeIdAllowlist",
    "Outcome",
    "decide",
    "effective",
    "validate",
    "REFUSED_TEXT",
    "IdentityConfig",
    "IdentityRefused",
    "IdentityService",
    "LinkCode",
    "LinkFailed",
    "Resolved",
    "Resolver",
]
