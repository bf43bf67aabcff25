"""One registry per kind of thing (datasets, models, formats, runtimes), timm-style."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from edge_fer.errors import UserError

T = TypeVar("T")


def closest(name: str, choices) -> str:
    """' (did you mean X?)' for the nearest choice, or '' where none is near."""
    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UserError(
                f"unknown {self.kind} {name!r}{closest(name, self._entries)}; known: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
