"""afactors channel: responses."""
