"""Test doubles for the Activity channel, all real HTTP servers on loopback.

`FakeIdentity`: OpenID metadata, JWKS and a client-credentials token endpoint, minting inbound tokens.
`FakeConnector`: the Bot Connector service, recording every call and checking each body with the
`microsoft-agents-activity` models. `BotClient`: builds Activities with those models and posts them with httpx.
These need the dev dependencies (microsoft-agents-activity).
"""

from afactors_activity.testing.client import BotClient
from afactors_activity.testing.connector import Call, FakeConnector
from afactors_activity.testing.identity import TOKEN_KINDS, FakeIdentity
from afactors_activity.testing.loopback import serving

__all__ = ["TOKEN_KINDS", "BotClient", "Call", "FakeConnector", "FakeIdentity", "serving"]
