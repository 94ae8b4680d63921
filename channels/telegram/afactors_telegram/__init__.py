"""afactors channel: telegram."""
