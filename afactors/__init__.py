"""afactors: an actor runtime on trio that hosts one agent behind many wire protocols."""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers; at run time `__getattr__` imports the host on first use
    from afactors.host import Host, HostConfig, open_host

__all__ = ["Host", "HostConfig", "__version__", "open_host"]


def __getattr__(name: str) -> object:
    # `afactors.open_host` without paying for the web stack on `import afactors.model`.
    if name in ("open_host", "Host", "HostConfig"):
        from afactors import host

        return getattr(host, name)
    raise AttributeError(f"module 'afactors' has no attribute {name!r}")
