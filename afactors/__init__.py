"""afactors: an actor runtime on trio that hosts one agent behind many wire protocols."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `afactors.open_host` without paying for the web stack on `import afactors.model`.
    if name in ("open_host", "Host"):
        from afactors import host

        return getattr(host, name)
    raise AttributeError(f"module 'afactors' has no attribute {name!r}")
