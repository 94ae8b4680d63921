"""afactors: an actor runtime on trio that hosts one agent behind many wire protocols."""

__version__ = "0.1.0"
