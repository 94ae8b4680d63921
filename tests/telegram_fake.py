"""The fake Bot API as the core tests that use Telegram run it: generous rate limits, still enforced, and the
channel's limits just inside them (the `fake` fixture in conftest.py)."""

from __future__ import annotations

from afactors_telegram import SendLimits
from afactors_telegram.testing import RateLimits

FAKE_LIMITS = RateLimits(per_chat_per_second=50.0, per_chat_burst=10, per_group_per_minute=3000,
                         global_per_second=2000.0, global_burst=200)  # fmt: skip
CHANNEL_LIMITS = SendLimits(per_chat_per_second=40.0, per_chat_burst=5, per_group_per_minute=2400,
                            per_group_burst=50, global_per_second=1500.0, global_burst=50)  # fmt: skip
