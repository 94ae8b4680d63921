"""Typed reads from request JSON: each wrong or missing field is a -32602 naming its path (e.g. `message.parts[0]`)."""

from __future__ import annotations

from typing import Any

from afactors_a2a.errors import invalid_params

_MISSING = object()


class Fields:
    """A JSON object at `path` in the params, read field by field with type checks."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise invalid_params(f"'{path}' must be an object", path)
        self.data: dict[str, Any] = data
        self.path = path

    def where(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise invalid_params(f"'{self.where(name)}' is required", self.where(name))
            return _MISSING
        return value

    def _wrong(self, name: str, kind: str) -> Exception:
        return invalid_params(f"'{self.where(name)}' must be {kind}", self.where(name))

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def text(self, name: str, *, required: bool = False, empty: bool = False) -> str | None:
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or (not empty and not value):
            raise self._wrong(name, "a string" if empty else "a non-empty string")
        return value

    def integer(self, name: str, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if isinstance(value, str) and value.lstrip("-").isdigit():  # proto-JSON may spell 64-bit ints as strings
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(name, "an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise invalid_params(f"'{self.where(name)}' must be {bounds}, got {value}", self.where(name))
        return value

    def flag(self, name: str) -> bool | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            raise self._wrong(name, "true or false")
        return value

    def obj(self, name: str, *, required: bool = False) -> Fields | None:
        value = self._get(name, required)
        return None if value is _MISSING else Fields(value, self.where(name))

    def array(self, name: str, *, required: bool = False) -> list[Any]:
        value = self._get(name, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            raise self._wrong(name, "an array")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        values = self.array(name)
        if not all(isinstance(v, str) for v in values):
            raise self._wrong(name, "an array of strings")
        return tuple(values)

    def metadata(self, name: str = "metadata") -> dict[str, Any] | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self._wrong(name, "an object")
        return value
