"""Calling a channel's hooks, which may be plain or async functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


async def called(hook: Callable[..., Any], *args: Any) -> Any:
    """Call a hook that may be a plain or an async function."""
    result = hook(*args)
    return await result if inspect.isawaitable(result) else result
