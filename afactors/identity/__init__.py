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
from afactors.identity._policy import (
    ExplicitPairs,
    LinkPolicy,
    LinkPolicyContext,
    allow_all_links,
    deny_all_links,
    pairs_allowed,
    same_tier_only,
)
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
    "ExplicitPairs",
    "LinkRequired",
    "LinkedClaimAllowlist",
    "NativeIdAllowlist",
    "Outcome",
    "allow_all_links",
    "decide",
    "deny_all_links",
    "effective",
    "pairs_allowed",
    "same_tier_only",
    "validate",
    "REFUSED_TEXT",
    "IdentityConfig",
    "IdentityRefused",
    "IdentityService",
    "LinkCode",
    "LinkFailed",
    "LinkPolicy",
    "LinkPolicyContext",
    "Resolved",
    "Resolver",
]
