"""The shared config base: every config class checks types and values when it is made, with
one line naming the field, and reads and writes JSON the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from facegen.classifier import ClassifierConfig
from facegen.config import TrainConfig
from facegen.errors import FacegenError
from facegen.models import MODELS
from facegen.settings import Settings, setting

CONFIG_CLASSES = [
    TrainConfig,
    ClassifierConfig,
    *dict.fromkeys(MODELS.get(name).config_class for name in MODELS.names()),
]


@dataclass
class Example(Settings):
    steps: int | None = setting(None, at_least=1)
    rate: float = setting(0.5, above=0, below=1)
    betas: tuple[float, float] = setting((0.5, 0.999), at_least=0, below=1)
    names: tuple[str, ...] = ("a",)
    mode: str = setting("fast", choices=("fast", "slow"))
    flag: bool = True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": "abc"}, "steps must be an int or null, not 'abc'"),
        ({"steps": 12.5}, "steps must be an int or null, not 12.5"),
        ({"steps": True}, "steps must be an int or null, not true"),  # a bool is no count
        ({"steps": 0}, "steps must be at least 1, not 0"),
        ({"rate": "0.1"}, "rate must be a number, not '0.1'"),
        ({"rate": float("nan")}, "rate must be a number, not NaN"),
        ({"rate": 1}, "rate must be in (0, 1), not 1.0"),
        ({"betas": [0.5]}, "betas must be a list of 2 numbers, not [0.5]"),
        ({"betas": [0.5, 1.5]}, "every value of betas must be in [0, 1), not 1.5"),
        ({"names": [1]}, "names must be a list of strings, not [1]"),
        ({"mode": "medium"}, "mode must be one of fast, slow, not 'medium'"),
        ({"flag": "yes"}, "flag must be true or false, not 'yes'"),
        ({"flag": 1}, "flag must be true or false, not 1"),
        ({"step": 3}, "unknown Example field: step (did you mean steps?)"),
        (
            {"colour": 3},
            "unknown Example field: colour; known: betas, flag, mode, names, rate, steps",
        ),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_field(values, message):
    with pytest.raises(FacegenError) as caught:
        Example.from_dict(values)
    assert str(caught.value) == message


def test_json_forms_are_read_and_written_back():
    example = Example.from_dict({"steps": 3, "rate": 0.25, "betas": [0, 0.9], "names": "b, c"})
    assert (example.betas, example.names) == ((0.0, 0.9), ("b", "c"))
    assert isinstance(example.betas[0], float)  # an int is fine for a float, and becomes one
    values = example.to_dict()
    assert values == {
        "steps": 3,
        "rate": 0.25,
        "betas": [0.0, 0.9],
        "names": ["b", "c"],
        "mode": "fast",
        "flag": True,
    }
    assert Example.from_dict(json.loads(json.dumps(values))) == example


def test_construction_replace_and_a_file_origin_are_checked_too():
    with pytest.raises(FacegenError, match="^rate must be in"):
        Example(rate=2.0)
    example = Example()
    assert example.replace(steps=5).steps == 5 and example.steps is None
    with pytest.raises(FacegenError, match="^steps must be at least 1, not 0$"):
        example.replace(steps=0)
    with pytest.raises(FacegenError, match="^unknown Example field: stesp"):
        example.replace(stesp=5)
    with pytest.raises(FacegenError, match="^presets/x.json: mode must be one of"):
        Example.from_dict({"mode": "x"}, "presets/x.json")


@pytest.mark.parametrize("config_class", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_class_uses_the_base(config_class):
    assert issubclass(config_class, Settings)
    defaults = config_class()
    assert config_class.from_dict(json.loads(json.dumps(defaults.to_dict()))) == defaults
    with pytest.raises(FacegenError, match=f"^unknown {config_class.__name__} field: nope"):
        config_class.from_dict({"nope": 1})
    # Every config has a count whose type is checked before anything uses it.
    name = next(n for n in ("batch_size", "width", "latent_dim") if hasattr(defaults, n))
    with pytest.raises(FacegenError, match=f"^{name} must be an int, not 'abc'$"):
        config_class.from_dict({name: "abc"})


def test_the_classifier_config_reads_its_saved_lists_and_checks_its_choices():
    config = ClassifierConfig.from_dict({"attribute_names": ["Smiling"], "lr": 1})
    assert config.attribute_names == ("Smiling",) and config.lr == 1.0
    assert config.to_dict()["attribute_names"] == ["Smiling"]
    with pytest.raises(FacegenError, match="^precision must be one of auto, fp32"):
        ClassifierConfig(precision="fp64")
    with pytest.raises(FacegenError, match=r"^device must be one of .*\(or cuda:N\), not 'gpu'$"):
        ClassifierConfig(device="gpu")
