"""A name -> class table for the pluggable parts (activations, losses). Local."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

P = TypeVar("P")


class Registry(Generic[P]):
    """Classes by their ``name``, in registration order; ``kind`` names them in errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, cls: type[P]) -> type[P]:
        """Class decorator: make ``cls`` available under ``cls.name``."""
        self._classes[cls.name] = cls  # type: ignore[attr-defined]
        return cls

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._classes)

    def classes(self) -> list[type[P]]:
        """The registered classes, in registration order."""
        return list(self._classes.values())

    def get(self, name: str, options: Any = None) -> P:
        """The part called ``name``, with its parameters from ``options``
        (``ValueError`` naming the known ones for an unknown name)."""
        try:
            cls = self._classes[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of {self.names()}"
            ) from None
        return cls.from_options(options)  # type: ignore[attr-defined]
