"""The built-in synthetic faces: CelebA layout, determinism, annotations, atomic writing."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data import synth
from facegen.data.celeba import (
    ALIGNED_HEIGHT,
    ALIGNED_WIDTH,
    ATTRIBUTE_FILE,
    ATTRIBUTE_NAMES,
    IDENTITY_FILE,
    IMAGE_FOLDER,
    LANDMARK_FILE,
    LANDMARK_NAMES,
    PARTITION_FILE,
    SYNTH_MARKER,
)
from facegen.data.synth import SynthConfig, render_face, synthesize
from facegen.errors import FacegenError

# CelebA's mean aligned landmarks: left eye, right eye, nose, left and right mouth corner.
CELEBA_MEAN_LANDMARKS = np.array([69, 111, 108, 111, 88, 134, 72, 152, 106, 152])
SAMPLE = SynthConfig(n=10_000, identities=20, seed=7)
SAMPLE_SIZE = 160


def attribute(name: str) -> int:
    return ATTRIBUTE_NAMES.index(name)


def read_rows(path: Path, header_lines: int) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[:header_lines], [line.split() for line in lines[header_lines:]]


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def faces() -> list[tuple[Image.Image, np.ndarray, int, np.ndarray]]:
    """A sample of faces drawn straight from render_face, shared by the annotation tests."""
    return [render_face(i, SAMPLE) for i in range(SAMPLE_SIZE)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small data set written with one worker."""
    out = tmp_path_factory.mktemp("synth") / "faces"
    synthesize(out, SynthConfig(n=16, identities=5, seed=3), workers=1, progress=False)
    return out


def test_layout_matches_celeba(written: Path) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 17)]
    assert sorted(p.name for p in written.iterdir()) == sorted(
        [IMAGE_FOLDER, ATTRIBUTE_FILE, IDENTITY_FILE, PARTITION_FILE, LANDMARK_FILE, SYNTH_MARKER]
    )
    assert json.loads((written / SYNTH_MARKER).read_text())["facegen_synthetic_faces"]["n"] == 16
    assert sorted(p.name for p in (written / IMAGE_FOLDER).iterdir()) == names
    for name in names:
        with Image.open(written / IMAGE_FOLDER / name) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (178, 218))

    header, rows = read_rows(written / ATTRIBUTE_FILE, 2)
    assert header[0] == "16" and header[1].split() == list(ATTRIBUTE_NAMES)
    assert [row[0] for row in rows] == names
    values = np.array([[int(v) for v in row[1:]] for row in rows])
    assert values.shape == (16, 40) and set(np.unique(values)) <= {-1, 1}

    header, rows = read_rows(written / LANDMARK_FILE, 2)
    assert header[0] == "16" and header[1].split() == list(LANDMARK_NAMES)
    assert [row[0] for row in rows] == names and all(len(row) == 11 for row in rows)

    _, rows = read_rows(written / IDENTITY_FILE, 0)
    assert [row[0] for row in rows] == names
    assert {int(row[1]) for row in rows} == {1, 2, 3, 4, 5}  # every identity has an image

    _, rows = read_rows(written / PARTITION_FILE, 0)
    assert [row[0] for row in rows] == names and {row[1] for row in rows} <= {"0", "1", "2"}


def test_files_agree_with_render_face(written: Path) -> None:
    config = SynthConfig(n=16, identities=5, seed=3)
    _, attribute_rows = read_rows(written / ATTRIBUTE_FILE, 2)
    _, landmark_rows = read_rows(written / LANDMARK_FILE, 2)
    _, identity_rows = read_rows(written / IDENTITY_FILE, 0)
    for index in (0, 9, 15):
        image, attributes, identity, landmarks = render_face(index, config)
        assert [int(v) for v in attribute_rows[index][1:]] == attributes.tolist()
        assert [int(v) for v in landmark_rows[index][1:]] == landmarks.tolist()
        assert int(identity_rows[index][1]) == identity
        with Image.open(written / IMAGE_FOLDER / f"{index + 1:06d}.jpg") as jpeg:
            difference = np.abs(
                np.asarray(jpeg, dtype=np.int16) - np.asarray(image, dtype=np.int16)
            )
        assert difference.mean() < 3  # the JPEG is this very picture


def test_deterministic_whatever_the_workers(written: Path, tmp_path: Path) -> None:
    again = synthesize(
        tmp_path / "again", SynthConfig(n=16, identities=5, seed=3), workers=2, progress=False
    )
    assert folder_bytes(again) == folder_bytes(written)


def test_first_images_do_not_depend_on_n(written: Path, tmp_path: Path) -> None:
    shorter = synthesize(
        tmp_path / "short", SynthConfig(n=7, identities=5, seed=3), workers=1, progress=False
    )
    short, full = folder_bytes(shorter), folder_bytes(written)
    for i in range(1, 8):
        name = f"{IMAGE_FOLDER}/{i:06d}.jpg"
        assert short[name] == full[name]
    for annotation, header in (
        (ATTRIBUTE_FILE, 2),
        (LANDMARK_FILE, 2),
        (IDENTITY_FILE, 0),
        (PARTITION_FILE, 0),
    ):
        assert (
            read_rows(shorter / annotation, header)[1]
            == read_rows(written / annotation, header)[1][:7]
        )


def test_another_seed_gives_other_faces(tmp_path: Path) -> None:
    first = render_face(0, SynthConfig(n=16, identities=5, seed=3))[0]
    other = render_face(0, SynthConfig(n=16, identities=5, seed=4))[0]
    assert np.abs(np.asarray(first, np.int16) - np.asarray(other, np.int16)).mean() > 5


def test_render_face_types(faces) -> None:
    image, attributes, identity, landmarks = faces[0]
    assert image.size == (ALIGNED_WIDTH, ALIGNED_HEIGHT) and image.mode == "RGB"
    assert attributes.dtype == np.int8 and attributes.shape == (40,)
    assert landmarks.shape == (10,) and np.issubdtype(landmarks.dtype, np.integer)
    assert isinstance(identity, int) and 1 <= identity <= SAMPLE.identities


@pytest.mark.parametrize(
    "name",
    [
        "Smiling",
        "Mouth_Slightly_Open",
        "Eyeglasses",
        "Male",
        "No_Beard",
        "Young",
        "Black_Hair",
        "Brown_Hair",
        "Blond_Hair",
        "Wearing_Lipstick",
        "Wearing_Earrings",
        "Bangs",
    ],
)
def test_drawn_attributes_take_both_values(faces, name: str) -> None:
    values = {int(f[1][attribute(name)]) for f in faces}
    assert values == {-1, 1}


def test_rarer_attributes_appear() -> None:
    # Rare attributes need more faces than the shared sample; the attributes alone are cheap
    # to check through the sampler, without drawing.
    seen: Counter[str] = Counter()
    for identity in range(1, 400):
        person = synth._person(0, identity)
        look = synth._look(synth._rng(0, 9, identity), person)
        row = synth._attributes(person, look)
        seen.update(name for name, v in zip(ATTRIBUTE_NAMES, row, strict=True) if v == 1)
    for name in (
        "Wearing_Hat",
        "Gray_Hair",
        "Bald",
        "Mustache",
        "Goatee",
        "5_o_Clock_Shadow",
        "Pale_Skin",
        "Heavy_Makeup",
        "Receding_Hairline",
        "Wavy_Hair",
        "Straight_Hair",
    ):
        assert 0 < seen[name] < 399, name
    for name in ("Attractive", "High_Cheekbones", "Pointy_Nose"):  # never drawn
        assert seen[name] == 0


def test_attributes_are_consistent(faces) -> None:
    for _, attributes, _, _ in faces:
        on = {name for name, v in zip(ATTRIBUTE_NAMES, attributes, strict=True) if v == 1}
        assert len(on & {"Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair"}) <= 1
        assert not ({"Gray_Hair", "Young"} <= on)
        assert not ({"Bald", "Wearing_Hat"} <= on)
        if on & {"Mustache", "Goatee", "5_o_Clock_Shadow", "Sideburns"}:
            assert "Male" in on
        if on & {"Goatee"}:
            assert "No_Beard" not in on


def test_identity_traits_are_stable(faces) -> None:
    stable = [
        attribute(n)
        for n in (
            "Male",
            "Young",
            "Black_Hair",
            "Brown_Hair",
            "Blond_Hair",
            "Gray_Hair",
            "Bald",
            "Bangs",
            "Pale_Skin",
            "Big_Nose",
            "Goatee",
            "No_Beard",
            "Narrow_Eyes",
        )
    ]
    by_identity: dict[int, set[tuple[int, ...]]] = defaultdict(set)
    for _, attributes, identity, _ in faces:
        by_identity[identity].add(tuple(attributes[stable]))
    assert len(by_identity) > 1
    assert all(len(traits) == 1 for traits in by_identity.values())
    # Identities really differ from one another.
    assert len({next(iter(traits)) for traits in by_identity.values()}) > 3


def test_identities_have_uneven_image_counts() -> None:
    config = SynthConfig(n=4000, identities=100, seed=0)
    counts = Counter(synth._assignment(i, config)[0] for i in range(config.n))
    assert set(counts) == set(range(1, 101))
    assert max(counts.values()) > 3 * min(counts.values())


def test_partitions_follow_celeba_proportions() -> None:
    config = SynthConfig(n=4000, identities=100, seed=0)
    counts = Counter(synth._assignment(i, config)[1] for i in range(config.n))
    shares = np.array([counts[p] for p in (0, 1, 2)]) / config.n
    np.testing.assert_allclose(shares, [0.803, 0.098, 0.099], atol=0.025)


def test_landmarks_sit_near_celeba_means(faces) -> None:
    landmarks = np.array([f[3] for f in faces])
    assert (landmarks[:, 0::2] >= 0).all() and (landmarks[:, 0::2] < ALIGNED_WIDTH).all()
    assert (landmarks[:, 1::2] >= 0).all() and (landmarks[:, 1::2] < ALIGNED_HEIGHT).all()
    assert np.abs(landmarks.mean(0) - CELEBA_MEAN_LANDMARKS).max() < 3
    assert np.abs(landmarks - CELEBA_MEAN_LANDMARKS).max() < 16
    assert landmarks.std(0).min() > 1  # pose varies


def test_eye_landmarks_are_on_the_pupils(faces) -> None:
    for image, attributes, _, landmarks in faces:
        if attributes[attribute("Blurry")] == 1:
            continue
        gray = np.asarray(image.convert("L"), dtype=np.float64)
        for x, y in ((landmarks[0], landmarks[1]), (landmarks[2], landmarks[3])):
            pupil = gray[y - 1 : y + 2, x - 1 : x + 2].min()
            cheek = gray[y + 14 : y + 17, x - 1 : x + 2].mean()
            assert pupil < cheek - 10


def test_smiles_lift_the_mouth_corners(faces) -> None:
    smiling = attribute("Smiling")
    # Mouth-corner height relative to the eyes, which the pose moves together.
    height = np.array([(f[3][7] + f[3][9]) / 2 - (f[3][1] + f[3][3]) / 2 for f in faces])
    smile = np.array([f[1][smiling] == 1 for f in faces])
    assert height[smile].mean() < height[~smile].mean() - 1.0


@pytest.mark.parametrize(
    ("config", "workers", "message"),
    [
        (SynthConfig(n=0), 1, "at least 1"),
        (SynthConfig(n=10, identities=0), 1, "at least 1"),
        (SynthConfig(n=10, identities=11), 1, "identities"),
        (SynthConfig(n=10, identities=2, seed=-1), 1, "seed"),
        (SynthConfig(n=10, identities=2), 0, "workers"),
    ],
)
def test_bad_input_is_refused(
    tmp_path: Path, config: SynthConfig, workers: int, message: str
) -> None:
    with pytest.raises(FacegenError, match=message) as error:
        synthesize(tmp_path / "out", config, workers=workers, progress=False)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_then_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "faces"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    drawn: list[int] = []
    real_render = synth._render
    monkeypatch.setattr(synth, "_render", lambda i, c: drawn.append(i) or real_render(i, c))
    with pytest.raises(FacegenError, match="already exists"):
        synthesize(out, SynthConfig(n=3, identities=1), workers=1, progress=False)
    assert drawn == []  # refused before drawing anything
    assert (out / "keep.txt").read_text() == "mine"

    synthesize(out, SynthConfig(n=3, identities=1), workers=1, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists()
    assert len(list((out / IMAGE_FOLDER).iterdir())) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["faces"]  # no temporary folders left


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_render = synth._render

    def failing(index: int, config: SynthConfig):
        if index == 4:
            raise KeyboardInterrupt
        return real_render(index, config)

    monkeypatch.setattr(synth, "_render", failing)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "faces", SynthConfig(n=8, identities=2), workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
