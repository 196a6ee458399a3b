"""Name -> thing tables: models, losses, samplers and metrics are chosen by name through a
:class:`Registry`, never through ``if``/``elif`` chains on names.

A registry is for an extension point: a kind of thing that grows by adding one entry where
it is defined (a model, a sampler, a metric, an export format). A closed set of choices (the
parts of a model, lerp and slerp) is a plain dict, looked up with :func:`choose`, which
gives the same one-line error for an unknown name."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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
        return choose(self._entries, name, self.kind)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def choose(entries: Mapping[str, T], name: str, kind: str) -> T:
    """``entries[name]``; an unknown name is a :class:`FacegenError` listing the known ones
    (``unknown interpolation method 'cubic'; choose one of: lerp, slerp``).

    >>> choose({"lerp": lerp, "slerp": slerp}, "slerp", "interpolation method") is slerp
    True
    """
    try:
        return entries[name]
    except KeyError:
        known = ", ".join(sorted(entries))
        raise FacegenError(f"unknown {kind} {name!r}; choose one of: {known}") from None
