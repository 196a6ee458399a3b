"""Choosing by name: a registry and a plain dict answer an unknown name with the same line."""

from __future__ import annotations

import pytest

from facegen.errors import FacegenError
from facegen.registry import Registry, choose


def test_choose_returns_the_entry_or_lists_the_known_names():
    table = {"slerp": "great circle", "lerp": "line"}
    assert choose(table, "lerp", "interpolation method") == "line"
    with pytest.raises(FacegenError) as caught:
        choose(table, "cubic", "interpolation method")
    assert str(caught.value) == "unknown interpolation method 'cubic'; choose one of: lerp, slerp"
    assert caught.value.exit_code == 2  # the user's input


def test_a_registry_gives_the_same_error_as_a_dict():
    registry = Registry[str]("loss")
    registry.register("mse")("squared")
    registry.register("bce")("bernoulli")
    assert registry.get("bce") == "bernoulli" and registry.names() == ["bce", "mse"]
    with pytest.raises(FacegenError, match=r"^unknown loss 'l1'; choose one of: bce, mse$"):
        registry.get("l1")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("mse")("again")
