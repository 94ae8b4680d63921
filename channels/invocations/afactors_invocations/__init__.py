"""afactors channel: invocations."""
