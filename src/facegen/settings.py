"""The one base of facegen's config dataclasses (training, models, the classifier).

A config is a ``@dataclass`` that subclasses :class:`Settings`. Its annotations are its
types, and every construction (so ``replace`` and ``from_dict`` too) checks them, with
JSON's forms accepted: a list for a ``tuple[...]``, an int for a ``float``, and for a
``tuple[str, ...]`` also a comma-separated string (``--set samplers=gmm,flow``). Bounds and
choices are declared on the field with :func:`setting`; rules that join several fields go
in the class's ``check``. Every mistake is one :class:`~facegen.errors.FacegenError` line
naming the field (``batch_size must be an int, not 'abc'``), never a ``TypeError`` from
deep inside the code that first uses the value.

>>> @dataclass
... class Example(Settings):
...     steps: int = setting(100, at_least=1)
...     betas: tuple[float, float] = setting((0.5, 0.999), at_least=0, below=1)
>>> Example.from_dict({"betas": [0.9, 0.99]}).to_dict()
{'steps': 100, 'betas': [0.9, 0.99]}
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union, cast

from facegen.errors import FacegenError

S = TypeVar("S", bound="Settings")
Choices = Iterable[Any] | Callable[[], Iterable[Any]]

_RULE = "facegen.rule"  # the field metadata key holding its Rule


@dataclass(frozen=True)
class Rule:
    """What a field's values must be, besides its type. Bounds apply to each number (each
    element of a tuple); ``None`` is never checked (it means "not set"). ``choices`` may be
    a function, called when checking, for lists that live in registries (loss names)."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: Choices | None = None
    # Who uses the field; the owning config's check() says what that means (TrainConfig:
    # the training objectives, so that a field no objective of the model reads is refused).
    used_by: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule, as the end of ``"NAME must ..."``; None if it
        does not."""
        if value is None:
            return None
        if self.choices is not None:
            choices = list(self.choices() if callable(self.choices) else self.choices)
            if value not in choices:
                return f"be one of {', '.join(map(str, choices))}, not {show(value)}"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = cast(float, value)  # numbers.Real declares no comparisons; a Real has them
            low_ok = (self.at_least is None or number >= self.at_least) and (
                self.above is None or number > self.above
            )
            high_ok = (self.at_most is None or number <= self.at_most) and (
                self.below is None or number < self.below
            )
            if not (low_ok and high_ok):  # NaN fails every comparison: refused here too
                return f"be {self.describe()}, not {show(value)}"
        return None

    def describe(self) -> str:
        """The bounds in words: ``at least 1``, ``positive``, ``in [0, 1)``."""
        low = self.at_least if self.at_least is not None else self.above
        high = self.at_most if self.at_most is not None else self.below
        if low is not None and high is not None:
            opening = "[" if self.at_least is not None else "("
            closing = "]" if self.at_most is not None else ")"
            return f"in {opening}{show(low)}, {show(high)}{closing}"
        if self.at_least is not None:
            return f"at least {show(self.at_least)}"
        if self.above is not None:
            return "positive" if self.above == 0 else f"above {show(self.above)}"
        if self.at_most is not None:
            return f"at most {show(self.at_most)}"
        return f"below {show(self.below)}"


def setting(
    default: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    choices: Choices | None = None,
    used_by: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with a default and its :class:`Rule`:
    ``batch_size: int = setting(64, at_least=1)``."""
    rule = Rule(at_least, above, at_most, below, choices, tuple(used_by))
    return dataclasses.field(default=default, metadata={_RULE: rule})


def rule_of(field: dataclasses.Field) -> Rule:
    """The field's rule (an empty one for a plain field)."""
    return field.metadata.get(_RULE) or Rule()


def default_of(field: dataclasses.Field) -> Any:
    """The field's default value (a fresh one where it has a factory)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


class Settings:
    """Typed, checked, JSON-friendly config dataclasses; subclass it and add ``@dataclass``.

    ``check()`` is the hook for rules across fields (call ``super().check()``);
    ``validate()`` runs everything again, for a config changed in place.
    """

    if TYPE_CHECKING:
        # What ``@dataclass`` gives every subclass (so ``dataclasses.fields`` accepts one),
        # and the type hints :func:`_type_hints` caches on each class.
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
        _facegen_hints: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Types (coercing JSON forms), then each field's rule, then :meth:`check`."""
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _convert(field.name, getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)
        for field in dataclasses.fields(self):
            check_value(field.name, getattr(self, field.name), rule_of(field))
        self.check()

    def check(self) -> None:
        """Rules that join several fields; nothing for a config without them."""

    @classmethod
    def checked(cls: type[S], values: Mapping[str, Any], origin: str | None = None) -> dict:
        """``values`` with unknown names refused and each value's type and rule checked
        (JSON forms converted), without the rules across fields: what a partial set of
        fields (a preset read before the command line is applied) can be checked for.
        Errors start with ``origin`` (a file) where given."""
        with _prefixed(origin):
            cls.refuse_unknown(values)
            hints = _type_hints(cls)
            fields = {field.name: field for field in dataclasses.fields(cls)}
            result = {}
            for name, value in values.items():
                result[name] = _convert(name, value, hints[name])
                check_value(name, result[name], rule_of(fields[name]))
            return result

    @classmethod
    def refuse_unknown(cls, names: Iterable[str]) -> None:
        """One line for names the class has no field for, suggesting the nearest ones."""
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(names) - set(known))
        if not unknown:
            return
        near = [m for name in unknown for m in difflib.get_close_matches(name, known, 1, 0.75)]
        hint = (
            f" (did you mean {' or '.join(dict.fromkeys(near))}?)"
            if near
            else f"; known: {', '.join(sorted(known))}"
        )
        plural = "s" * (len(unknown) > 1)
        raise FacegenError(f"unknown {cls.__name__} field{plural}: {', '.join(unknown)}{hint}")

    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any], origin: str | None = None) -> S:
        """Build from a JSON object (a preset, a saved ``config.json``): lists become tuples,
        unknown names are refused, and errors start with ``origin`` where given."""
        with _prefixed(origin):
            cls.refuse_unknown(values)
            return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists), ready for ``json.dump``."""
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes``, checked like a new config."""
        type(self).refuse_unknown(changes)
        return dataclasses.replace(self, **changes)


def check_value(name: str, value: Any, rule: Rule) -> None:
    """Refuse ``value`` (each element of a tuple) where it breaks ``rule``."""
    values = value if isinstance(value, tuple) else (value,)
    for element in values:
        problem = rule.problem(element)
        if problem is not None:
            owner = f"every value of {name}" if isinstance(value, tuple) else name
            raise FacegenError(f"{owner} must {problem}")


def show(value: Any) -> str:
    """A value as a user wrote it: JSON for numbers, lists and null, quotes for text."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(_plain(value))
    except (TypeError, ValueError):
        return repr(value)


class _Refused(Exception):
    """A value does not fit a type (caught and reported with the field's name)."""


def _type_hints(cls: type[Settings]) -> dict[str, Any]:
    cached = cls.__dict__.get("_facegen_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        cls._facegen_hints = cached
    return cached


def _convert(name: str, value: Any, hint: Any) -> Any:
    try:
        return _as(value, hint)
    except _Refused:
        raise FacegenError(f"{name} must be {describe(hint)}, not {show(value)}") from None


def _as(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` holds it, or :class:`_Refused`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _as(value, arg)
                except _Refused:
                    continue
        raise _Refused
    if origin is Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        raise _Refused
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Refused
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _Refused
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if math.isnan(value):
                raise _Refused
            return float(value)
        raise _Refused
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Refused
    if origin is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        if variadic and args[0] is str and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise _Refused
        element_types = [args[0]] * len(value) if variadic else list(args)
        if len(element_types) != len(value):
            raise _Refused
        return tuple(_as(v, t) for v, t in zip(value, element_types, strict=True))
    if origin is dict:
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return value if isinstance(value, dict) else dict(value)
        raise _Refused
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _Refused
    return value


def describe(hint: Any, plural: bool = False) -> str:
    """A type in the words of JSON: ``an int``, ``a list of 2 numbers``, ``a string or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        words = [describe(arg, plural) for arg in args if arg is not type(None)]
        return " or ".join(words + ["null"] * (type(None) in args))
    if origin is Literal:
        return "one of " + ", ".join(show(arg) for arg in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            text = f"list{'s' * plural} of {describe(args[0], plural=True)}"
        else:
            same = len(set(args)) == 1
            inner = describe(args[0], True) if same else ", ".join(map(describe, args))
            text = f"list{'s' * plural} of {len(args)} {inner}"
        return text if plural else f"a {text}"
    names = {
        bool: ("true or false", "true or false values"),
        int: ("an int", "ints"),
        float: ("a number", "numbers"),
        str: ("a string", "strings"),
        dict: ("a JSON object", "JSON objects"),
    }
    key = origin or hint
    if key in names:
        return names[key][plural]
    return getattr(hint, "__name__", str(hint))


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    return value


class _prefixed:
    """Re-raise a FacegenError with ``origin: `` in front (nothing without an origin)."""

    def __init__(self, origin: str | None) -> None:
        self.origin = origin

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        # Returns None: the error (if any) propagates, and type checkers know it does.
        if self.origin and isinstance(error, FacegenError):
            raise FacegenError(f"{self.origin}: {error}") from None
