"""The built-in data set: procedural faces written in the official CelebA layout.

``synthesize`` writes ``img_align_celeba/000001.jpg ...`` (178x218 JPEGs) and the four
annotation files, so every code path that reads real CelebA runs on it unchanged. Faces
belong to identities with stable traits (face shape, skin, hair, eyes, nose, sex, age,
facial hair) and vary per image (expression, glasses, hat, make-up, pose, light,
background). Attributes are written under their CelebA names only where the picture shows
them; the attributes it never draws are -1.

Everything is a pure function of ``(seed, index)`` for an image and ``(seed, identity)`` for
a person's traits, so the output is byte-identical whatever the number of workers, and
image i does not depend on how many images are asked for.

>>> synthesize("data/synth", SynthConfig(n=2000, identities=100, seed=0))
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.data.celeba import ATTRIBUTE_NAMES, IMAGE_FOLDER, SYNTH_MARKER, write_annotations
from facegen.data.synth_draw import Color, Identity, Look, draw_face
from facegen.errors import FacegenError
from facegen.files import atomic_directory, write_json
from facegen.progress import progress_bar

JPEG_QUALITY = 90
# Share of images per partition (train, valid, test), as in CelebA: 162,770 / 19,867 / 19,962.
PARTITION_SHARES = (0.8034, 0.0981, 0.0985)

# Independent random streams, so that adding a draw to one never shifts another.
_IMAGE_STREAM, _IDENTITY_STREAM, _TABLE_STREAM, _ASSIGN_STREAM = 0, 1, 2, 3

# Palettes (RGB). Skin runs from palest to darkest; a person's tone is a point along it.
_SKIN_TONES = np.array([
    (250, 226, 212), (241, 204, 180), (228, 183, 153), (205, 155, 118), (176, 125, 88),
    (138, 92, 64), (102, 66, 46), (72, 47, 35),
], dtype=np.float64)  # fmt: skip
_HAIR_COLORS: dict[str, tuple[Color, ...]] = {
    "black": ((20, 17, 16), (32, 25, 22), (42, 32, 27)),
    "brown": ((58, 38, 26), (88, 58, 38), (118, 82, 52), (142, 102, 66)),
    "blond": ((196, 160, 102), (218, 188, 130), (232, 214, 170)),
    "gray": ((118, 116, 114), (156, 154, 150), (192, 190, 186), (220, 218, 214)),
    "red": ((128, 48, 22), (158, 70, 32), (176, 96, 50)),
}
# Dark brown, brown, hazel, green, blue, grey.
_EYE_COLORS: tuple[Color, ...] = (
    (52, 32, 20), (92, 58, 32), (120, 92, 50), (78, 115, 68), (76, 118, 168), (118, 130, 142),
)  # fmt: skip
_LIPSTICKS: tuple[Color, ...] = ((190, 30, 50), (210, 60, 90), (150, 30, 50), (200, 90, 90))
_EYE_SHADOWS: tuple[Color, ...] = ((110, 70, 90), (70, 60, 90), (130, 90, 70), (90, 110, 140))
_FRAMES: tuple[Color, ...] = ((20, 20, 22), (60, 40, 30), (170, 150, 110), (160, 160, 170))
_JEWELS: tuple[Color, ...] = ((228, 190, 90), (205, 205, 215), (200, 60, 80), (90, 160, 210))
_HAIR_ATTRIBUTES = {
    "black": "Black_Hair",
    "brown": "Brown_Hair",
    "blond": "Blond_Hair",
    "gray": "Gray_Hair",
}
_NEVER_DRAWN = ("Attractive", "High_Cheekbones", "Pointy_Nose")


@dataclass(frozen=True)
class SynthConfig:
    """How many faces, how many people they belong to, and the seed that fixes them all."""

    n: int = 5000
    identities: int = 200
    seed: int = 0

    def validate(self) -> None:
        if self.n < 1:
            raise FacegenError(f"the number of images must be at least 1, not {self.n}")
        if self.identities < 1:
            raise FacegenError(
                f"the number of identities must be at least 1, not {self.identities}"
            )
        if self.identities > self.n:
            raise FacegenError(
                f"cannot spread {self.n} images over {self.identities} identities: "
                "every identity needs at least one image (lower --identities or raise --n)"
            )
        if self.seed < 0:
            raise FacegenError(f"the seed must not be negative, not {self.seed}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


# ----------------------------------------------------------------------------- identities


@functools.lru_cache(maxsize=4)
def _identity_table(seed: int, identities: int) -> tuple[np.ndarray, np.ndarray]:
    """A permutation giving the first ``identities`` images one person each, and the
    cumulative share of every person among the rest: uneven, like CelebA's 1 to 35."""
    rng = _rng(seed, _TABLE_STREAM, identities)
    order = rng.permutation(identities)
    weights = rng.lognormal(0.0, 0.8, identities)
    cdf = np.cumsum(weights)
    return order, cdf / cdf[-1]


def _assignment(index: int, config: SynthConfig) -> tuple[int, int]:
    """Image ``index``'s identity (1-based) and partition (0 train, 1 valid, 2 test)."""
    order, cdf = _identity_table(config.seed, config.identities)
    person_draw, partition_draw = _rng(config.seed, _ASSIGN_STREAM, index).random(2)
    if index < config.identities:
        identity = int(order[index])
    else:
        identity = int(min(np.searchsorted(cdf, person_draw, side="right"), config.identities - 1))
    partition = int(
        np.searchsorted(np.cumsum(PARTITION_SHARES), partition_draw * sum(PARTITION_SHARES))
    )
    return identity + 1, min(partition, 2)


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    p = np.array([options[k] for k in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pick_color(rng: np.random.Generator, colors: tuple[Color, ...]) -> Color:
    return colors[int(rng.integers(len(colors)))]


def _mix_color(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _random_color(rng: np.random.Generator, saturation: float, value: tuple[float, float]) -> Color:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, saturation), rng.uniform(*value))
    return (255.0 * r, 255.0 * g, 255.0 * b)


@dataclass(frozen=True)
class _Person:
    """One identity: how to draw them, the attributes every picture of them shows, and how
    often they wear glasses (a habit, so it belongs to the person)."""

    traits: Identity
    attributes: frozenset[str]
    glasses_chance: float


def _hair(rng: np.random.Generator, male: bool, young: bool, tone: float) -> tuple[str, str]:
    """Hair colour name and style, with the dependencies real faces have."""
    if not young and rng.random() < 0.55:
        color = "gray"
    else:
        fair = max(0.0, 1 - 2.2 * tone)  # blond and red hair mostly on light skin
        color = _pick(rng, {"black": 0.3 + 0.5 * tone, "brown": 0.38, "blond": 0.3 * fair,
                            "red": 0.1 * fair})  # fmt: skip
    if not male:
        styles = {"short": 0.1, "bob": 0.28, "long": 0.45, "curly": 0.17}
    elif young:
        styles = {"crew": 0.27, "short": 0.46, "bob": 0.03, "long": 0.03, "curly": 0.09,
                  "receding": 0.09, "bald": 0.03}  # fmt: skip
    else:
        styles = {"crew": 0.2, "short": 0.3, "curly": 0.05, "receding": 0.25, "bald": 0.2}
    return color, _pick(rng, styles)


def _beard(rng: np.random.Generator, male: bool, young: bool, style: str) -> str:
    if not male:
        return "none"
    odds = {"none": 0.55, "stubble": 0.15, "mustache": 0.06, "goatee": 0.1, "full": 0.14}
    if not young:
        odds = {"none": 0.45, "stubble": 0.1, "mustache": 0.15, "goatee": 0.1, "full": 0.2}
    beard = _pick(rng, odds)
    long_hair = style in ("bob", "long", "curly")
    return (
        "stubble" if long_hair and beard == "none" else beard
    )  # long-haired men still read as men


@functools.lru_cache(maxsize=4096)
def _person(seed: int, identity: int) -> _Person:
    rng = _rng(seed, _IDENTITY_STREAM, identity)
    u = rng.uniform
    male, young = bool(rng.random() < 0.42), bool(rng.random() < 0.72)
    tone = float(rng.beta(1.1, 1.6))  # 0 palest .. 1 darkest, weighted towards light
    position = tone * (len(_SKIN_TONES) - 1)
    lo = min(int(position), len(_SKIN_TONES) - 2)
    tone_rgb = _SKIN_TONES[lo] + (_SKIN_TONES[lo + 1] - _SKIN_TONES[lo]) * (position - lo)
    red, green, blue = (float(v) for v in tone_rgb * u(0.96, 1.03, 3))
    skin = (red, green, blue)
    hair_name, style = _hair(rng, male, young, tone)
    hair_color = _pick_color(rng, _HAIR_COLORS[hair_name])
    texture = "curly" if style == "curly" else ("wavy" if rng.random() < 0.4 else "straight")
    bangs = rng.random() < {"short": 0.12, "bob": 0.35, "long": 0.3, "curly": 0.15}.get(style, 0)
    beard = _beard(rng, male, young, style)
    # Identity-level attributes, drawn as clearly separated variants so each one shows.
    flags = {name: bool(rng.random() < chance) for name, chance in (
        ("Narrow_Eyes", 0.08), ("Chubby", 0.1), ("Big_Nose", 0.15), ("Big_Lips", 0.12),
        ("Bushy_Eyebrows", 0.2 if male else 0.05), ("Arched_Eyebrows", 0.0 if male else 0.45),
        ("Bags_Under_Eyes", 0.06 if young else 0.55), ("Goatee_Mustache", 0.6),
        ("Sideburns", 0.25 if male and style in ("crew", "short") else 0.0),
    )}  # fmt: skip
    flags["Double_Chin"] = (flags["Chubby"] and rng.random() < 0.6) or (
        not young and rng.random() < 0.15
    )
    jaw = (u(2.4, 3.3) if male else u(1.85, 2.6)) + (0.4 if flags["Chubby"] else 0.0)
    brow = u(4.6, 5.6) if flags["Bushy_Eyebrows"] else u(2.8, 3.8) if male else u(2.0, 2.9)
    goatee_mustache = flags.pop("Goatee_Mustache")
    lip_tint = (190, 75, 85) if tone < 0.5 else (150, 62, 70)
    eye_weights = np.array([3 + 6 * tone, 3, 1.5, 1 - tone, 1.5 - 1.4 * tone, 0.8 - 0.7 * tone])
    traits = Identity(
        male=male,
        skin=skin,
        hair_color=hair_color,
        hair_style=style,
        hair_texture=texture,
        bangs=bool(bangs),
        parting=u(-1, 1),
        hair_volume={"crew": u(2, 4), "receding": u(2, 4), "curly": u(9, 15)}.get(style, u(4, 8)),
        hair_length={"bob": u(-10, 5), "long": u(25, 55), "curly": u(0, 25)}.get(style, 0.0),
        eye_color=_EYE_COLORS[int(rng.choice(len(_EYE_COLORS), p=eye_weights / eye_weights.sum()))],
        eye_spacing=u(18.5, 20.5),
        eye_offset=u(-1.5, 1.5),
        eye_width=u(8.0, 9.2),
        eye_open=u(2.4, 2.8) if flags["Narrow_Eyes"] else u(3.6, 4.4),
        iris_radius=u(3.5, 4.0),
        brow_thickness=brow,
        brow_arch=u(2.8, 3.8) if flags["Arched_Eyebrows"] else u(0.4, 1.8),
        brow_gap=u(11.5, 13.5),
        brow_color=_mix_color(
            hair_color, (25, 20, 18), 0.35 if hair_name in ("blond", "gray") else 0.15
        ),
        face_width=(u(44.5, 48.5) if male else u(41.5, 45.5)) + (5.0 if flags["Chubby"] else 0.0),
        jaw_power=jaw,
        chin_y=u(172.5, 178.5) if male else u(171.5, 176.5),
        skull_top=u(47, 51),
        nose_width=(u(6.2, 7.4) if male else u(5.5, 6.6)) + (2.4 if flags["Big_Nose"] else 0.0),
        nose_y=u(132.5, 135.5) + (1.2 if flags["Big_Nose"] else 0.0),
        mouth_width=u(14.5, 17),
        mouth_y=u(151, 154),
        upper_lip=u(2.7, 3.3) + (0.0 if male else 0.5) + (1.4 if flags["Big_Lips"] else 0.0),
        lower_lip=u(3.6, 4.4) + (0.0 if male else 0.4) + (1.6 if flags["Big_Lips"] else 0.0),
        lip_color=_mix_color(skin, lip_tint, 0.5),
        beard=beard,
        goatee_mustache=goatee_mustache,
        sideburns=flags["Sideburns"],
        double_chin=flags["Double_Chin"],
        bags=flags["Bags_Under_Eyes"],
        wrinkles=not young,
        ear_size=u(0.9, 1.1),
    )
    shown = {name for name, on in flags.items() if on}
    shown |= {name for name, on in (
        ("Male", male), ("Young", young), ("Pale_Skin", tone < 0.09), ("Bald", style == "bald"),
        ("Bangs", traits.bangs), ("Receding_Hairline", style == "receding"),
        ("Oval_Face", jaw < 2.15), ("5_o_Clock_Shadow", beard == "stubble"),
        ("Goatee", beard == "goatee"), ("No_Beard", beard not in ("goatee", "full")),
        ("Mustache", beard in ("mustache", "full") or (beard == "goatee" and goatee_mustache)),
        ("Straight_Hair", style in ("bob", "long") and texture == "straight"),
        ("Wavy_Hair", style in ("bob", "long", "curly") and texture != "straight"),
    ) if on}  # fmt: skip
    if style != "bald" and hair_name in _HAIR_ATTRIBUTES:  # a bald head's rim is too thin
        shown.add(_HAIR_ATTRIBUTES[hair_name])
    return _Person(traits, frozenset(shown), 0.7 if rng.random() < 0.15 else 0.03)


def _look(rng: np.random.Generator, person: _Person) -> Look:
    female = not person.traits.male
    u = rng.uniform
    smiling = bool(rng.random() < 0.5)
    glasses = None
    if rng.random() < person.glasses_chance:
        glasses = "sun" if rng.random() < 0.25 else "clear"
    hat = None
    if person.traits.hair_style != "bald" and rng.random() < 0.08:
        hat = _pick(rng, {"beanie": 1, "cap": 1, "brim": 0.7})
    lipstick = None
    if female and rng.random() < 0.75:
        lipstick = _pick_color(rng, _LIPSTICKS)
    eye_shadow = None
    if lipstick is not None and rng.random() < 0.55:
        eye_shadow = _pick_color(rng, _EYE_SHADOWS)
    earrings = None
    if rng.random() < (0.4 if female else 0.04):
        earrings = _pick(rng, {"stud": 1, "hoop": 1, "drop": 1})
    background = _pick(rng, {"solid": 1, "gradient": 1.2, "radial": 0.8, "blobs": 1, "panels": 0.7})
    return Look(
        smiling=smiling,
        mouth_open=bool(rng.random() < (0.65 if smiling else 0.2)),
        glasses=glasses,
        glasses_color=_pick_color(rng, _FRAMES),
        glasses_round=bool(rng.random() < 0.35),
        hat=hat,
        hat_color=_random_color(rng, 0.7, (0.15, 0.85)),
        lipstick=lipstick,
        eye_shadow=eye_shadow,
        rosy_cheeks=bool(rng.random() < (0.12 if female else 0.03)),
        earrings=earrings,
        earring_color=_pick_color(rng, _JEWELS),
        necklace=bool(rng.random() < (0.2 if female else 0.02)),
        necktie=bool(not female and rng.random() < 0.15),
        necktie_color=_random_color(rng, 0.8, (0.2, 0.7)),
        clothing_color=_random_color(rng, 0.6, (0.1, 0.9)),
        background=background,
        background_colors=(
            _random_color(rng, 0.55, (0.15, 0.95)),
            _random_color(rng, 0.55, (0.15, 0.95)),
        ),
        light_angle=-math.pi / 2 + float(np.clip(rng.normal(0, 0.9), -1.5, 1.5)),  # mostly above
        light_strength=u(0.05, 0.35),
        brightness=u(0.85, 1.1),
        warmth=u(-0.05, 0.08),
        yaw=u(-1, 1),
        roll=math.radians(float(np.clip(rng.normal(0, 2.5), -6, 6))),
        scale=u(0.95, 1.05),
        shift=(u(-2.5, 2.5), u(-2.5, 2.5)),
        gaze=(u(-1.0, 1.0), u(-0.4, 0.4)),
        blur=u(2.0, 2.8) if rng.random() < 0.05 else 0.0,
        noise=u(1.5, 4.0),
    )


def _attributes(person: _Person, look: Look) -> np.ndarray:
    """The 40 CelebA attributes, 1 where the picture shows them and -1 elsewhere."""
    shown = set(person.attributes)
    if look.hat is not None:
        shown.discard("Receding_Hairline")  # under the hat
    shown |= {name for name, on in (
        ("Smiling", look.smiling), ("Mouth_Slightly_Open", look.mouth_open),
        ("Eyeglasses", look.glasses is not None), ("Wearing_Hat", look.hat is not None),
        ("Wearing_Lipstick", look.lipstick is not None),
        ("Heavy_Makeup", look.eye_shadow is not None),
        ("Rosy_Cheeks", look.rosy_cheeks), ("Wearing_Earrings", look.earrings is not None),
        ("Wearing_Necklace", look.necklace), ("Wearing_Necktie", look.necktie),
        ("Blurry", look.blur > 0),
    ) if on}  # fmt: skip
    return np.array([1 if name in shown else -1 for name in ATTRIBUTE_NAMES], dtype=np.int8)


@dataclass(frozen=True)
class _Record:
    image: Image.Image
    attributes: np.ndarray  # int8 [40]
    identity: int  # 1-based
    partition: int  # 0 train, 1 valid, 2 test
    landmarks: np.ndarray  # int [10]


def _render(index: int, config: SynthConfig) -> _Record:
    identity, partition = _assignment(index, config)
    person = _person(config.seed, identity)
    rng = _rng(config.seed, _IMAGE_STREAM, index)
    look = _look(rng, person)
    image, landmarks = draw_face(person.traits, look, rng)
    return _Record(image, _attributes(person, look), identity, partition, landmarks)


def render_face(index: int, config: SynthConfig) -> tuple[Image.Image, np.ndarray, int, np.ndarray]:
    """Draw image ``index`` (0-based) of the data set ``config`` describes.

    Returns the 178x218 RGB image, its attributes (int8 [40], 1 / -1 in ATTRIBUTE_NAMES
    order), its 1-based identity and its landmarks (int [10], x, y of left eye, right eye,
    nose, left and right mouth corner).

    >>> image, attributes, identity, landmarks = render_face(0, SynthConfig(seed=1))
    """
    record = _render(index, config)
    return record.image, record.attributes, record.identity, record.landmarks


# ----------------------------------------------------------------------------- writing


def _file_name(index: int) -> str:
    return f"{index + 1:06d}.jpg"


def _write_chunk(
    task: tuple[Path, SynthConfig, range],
) -> tuple[range, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder, config, indices = task
    n = len(indices)
    attributes = np.empty((n, len(ATTRIBUTE_NAMES)), dtype=np.int8)
    identities = np.empty(n, dtype=np.int64)
    partitions = np.empty(n, dtype=np.int64)
    landmarks = np.empty((n, 10), dtype=np.int64)
    for row, index in enumerate(indices):
        record = _render(index, config)
        record.image.save(folder / _file_name(index), format="JPEG", quality=JPEG_QUALITY)
        attributes[row], identities[row] = record.attributes, record.identity
        partitions[row], landmarks[row] = record.partition, record.landmarks
    return indices, attributes, identities, partitions, landmarks


def synthesize(
    out: str | Path,
    config: SynthConfig,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``config.n`` synthetic faces in the CelebA layout into the folder ``out``.

    The folder is built under a temporary name beside ``out`` and renamed at the end, so
    an interrupted run leaves nothing behind. ``workers`` processes draw in parallel
    (default: one per CPU); the result does not depend on how many.
    """
    config.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FacegenError(f"{out} already exists; pass --overwrite to replace it")
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise FacegenError(f"the number of workers must be at least 1, not {workers}")
    n = config.n
    attributes = np.empty((n, len(ATTRIBUTE_NAMES)), dtype=np.int8)
    identities = np.empty(n, dtype=np.int64)
    partitions = np.empty(n, dtype=np.int64)
    landmarks = np.empty((n, 10), dtype=np.int64)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        folder = tmp / IMAGE_FOLDER
        folder.mkdir()
        chunk = max(1, min(64, math.ceil(n / (workers * 8))))
        tasks = [(folder, config, range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
        with progress_bar(total=n, desc="synth", unit="img", disable=not progress) as bar:
            results: Iterator[tuple[range, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
            if workers == 1 or len(tasks) == 1:
                results = map(_write_chunk, tasks)
                pool = None
            else:
                # spawn, not fork: the caller may hold threads (torch) that fork would copy.
                pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
                results = pool.imap_unordered(_write_chunk, tasks)
            try:
                columns: tuple[np.ndarray, ...] = (attributes, identities, partitions, landmarks)
                for indices, *values in results:
                    rows = slice(indices.start, indices.stop)
                    for column, chunk_values in zip(columns, values, strict=True):
                        column[rows] = chunk_values
                    bar.update(len(indices))
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
        write_annotations(
            tmp,
            [_file_name(i) for i in range(n)],
            attributes=attributes,
            identities=identities,
            partitions=partitions,
            landmarks=landmarks,
        )
        # What the folder is, for those who read it later (a model card's license): CelebA's
        # layout, but none of CelebA's images or terms.
        write_json(tmp / SYNTH_MARKER, {"facegen_synthetic_faces": dataclasses.asdict(config)})
    return out
