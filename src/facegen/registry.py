"""Name -> thing tables: models, losses, samplers and metrics are chosen by name through a
:class:`Registry`, never through ``if``/``elif`` chains on names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from facegen.errors import FacegenError

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of named entries of one kind.

    >>> LOSSES = Registry[Callable]("loss")
    >>> @LOSSES.register("hinge")
    ... def hinge(...): ...
    >>> LOSSES.get("hinge")
    """

    def __init__(self, kind: str) -> None:
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
        """The entry called ``name``; an unknown name lists the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise FacegenError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
