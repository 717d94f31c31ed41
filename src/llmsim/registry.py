"""Name -> factory registries: the one extension mechanism.

A new scheduler, router, arrival process or estimator is one file with one decorator::

    SCHEDULERS = Registry("scheduler")

    @SCHEDULERS.register("fcfs-continuous")
    class ContinuousBatching: ...

Lookups of unknown names raise :class:`UnknownNameError` with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from llmsim.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of named factories (classes or functions) of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and optional aliases)."""

        def deco(obj: T) -> T:
            key = name.lower()
            if key in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[key] = obj
            for alias in aliases:
                self._aliases[alias.lower()] = key
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` or of the alias it is (case-insensitive)."""
        key = str(name).lower()
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise UnknownNameError(self.kind, name, list(self._items) + list(self._aliases))
        return key

    def get(self, name: str) -> T:
        """The factory registered under ``name`` (case-insensitive)."""
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        key = name.lower()
        return self._aliases.get(key, key) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
