"""What the browser demo does, without the browser: every request of `facegen demo` is one
call of a :class:`Studio` method that checks its inputs and returns pictures.

Keeping this apart from Gradio means the bounds and the error messages are tested as plain
Python, and a notebook can use the same calls. Inputs arrive from a web page, so nothing is
trusted: counts, seeds, strengths and mixes are checked here again (a client can call the
API without the page's sliders), and an unreadable upload or a photo without a face is a
:class:`~facegen.errors.FacegenError` whose message the page shows.

>>> studio = Studio([facegen.load_run("runs/vae")])
>>> grid = studio.sample("vae", seed=0, count=16)   # uint8 (H, W, 3)
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.data.loader import to_uint8
from facegen.errors import FacegenError
from facegen.explore.common import require_encoder
from facegen.explore.edit import load_directions
from facegen.explore.interpolate import INTERPOLATIONS, read_photo, run_crop
from facegen.metrics.reconstruction import mean_squared_error, peak_signal_noise_ratio
from facegen.run import Run
from facegen.viz.grid import image_grid, labelled_grid, save_gif, upscale

MAX_FACES = 64
MAX_SEED = 2**31 - 1
MAX_STRENGTH = 3.0  # standard deviations along an attribute direction
MAX_TRUNCATION = 3.0  # 0 means no truncation
INTERPOLATION_STEPS = 10
# Uploads larger than this many pixels are refused before decoding (a 40-megapixel photo
# is larger than any phone's; beyond it an upload is a mistake or a decompression bomb).
MAX_PHOTO_PIXELS = 40_000_000
# Faces are shown at least this many pixels high: 64-pixel faces are tiny on a screen, and
# whole-factor nearest-neighbour enlargement keeps every pixel honest.
SHOWN_SIDE = 128


@dataclass(frozen=True)
class Photo:
    """An uploaded photo as the model sees it, and where it came from."""

    image: torch.Tensor  # (3, S, S) in [-1, 1]
    name: str


class Studio:
    """The runs a demo serves, loaded once, and the requests it answers.

    Methods are safe to call from several threads at once (Gradio serves requests on a
    thread pool): models only run inference, and the samplers and attribute directions are
    loaded up front instead of lazily.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        if not runs:
            raise FacegenError("give at least one run folder")
        self.runs: dict[str, Run] = {}
        for run in runs:
            name = run.path.name or str(run.path)
            if name in self.runs:  # runs/a/vae and runs/b/vae: tell them apart by full path
                name = str(run.path)
            self.runs[name] = run
        self._samplers = {name: run.sampler_names for name, run in self.runs.items()}
        for name, run in self.runs.items():
            for sampler in self._samplers[name]:
                run.sampler(sampler)  # loaded now, so requests only read the run's cache
        self._directions = {name: load_directions(run) for name, run in self.runs.items()}
        self._gif_folder = Path(tempfile.mkdtemp(prefix="facegen-demo-"))
        self._gif_count = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        """Remove the GIFs written so far."""
        shutil.rmtree(self._gif_folder, ignore_errors=True)

    @property
    def names(self) -> list[str]:
        return list(self.runs)

    def run(self, name: str) -> Run:
        if name not in self.runs:
            raise FacegenError(f"unknown run {name!r}; this demo serves: {', '.join(self.runs)}")
        return self.runs[name]

    def describe(self, name: str) -> str:
        """One line about a run for the page: model, sizes and what it was trained on."""
        run = self.run(name)
        size = run.model.image_size
        images = run.config.get("data", {}).get("train_images")
        trained = f", trained on {images:,} images" if isinstance(images, int) else ""
        return (
            f"{name}: {run.name} making {size}x{size} faces from {run.model.latent_dim} "
            f"latents{trained} ({run.path})"
        )

    def samplers(self, name: str) -> list[str]:
        """The latent samplers a run can use, its default first."""
        run = self.run(name)
        names = list(self._samplers[name])
        names.sort(key=lambda s: s != run.default_sampler)
        return names

    def attributes(self, name: str) -> list[str]:
        """Attributes with a saved direction in the run (``facegen edit`` saves them)."""
        return sorted(self._directions[name])

    def has_encoder(self, name: str) -> bool:
        return self.run(name).model.has_encoder

    def sample(
        self,
        name: str,
        seed: int,
        count: int,
        sampler: str | None = None,
        truncation: float = 0.0,
    ) -> np.ndarray:
        """A grid of ``count`` new faces from ``seed``: uint8 (H, W, 3)."""
        run = self.run(name)
        count = _bounded_int(count, "count", 1, MAX_FACES)
        z = self._latents(name, seed, count, sampler, truncation)
        faces = to_uint8(run.decode(z))
        return image_grid(upscale(faces, SHOWN_SIDE // 2 if count > 16 else SHOWN_SIDE))

    def interpolation(
        self,
        name: str,
        *,
        seeds: tuple[int, int] = (0, 1),
        photos: tuple[str | None, str | None] = (None, None),
        detect_faces: bool = True,
        mix: float = 0.5,
        sampler: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, Path]:
        """The face at ``mix`` between two ends (seeds, or uploaded photos where given),
        the labelled strip of the walk and its GIF: (face, strip, gif path)."""
        run = self.run(name)
        mix = _bounded_float(mix, "mix", 0.0, 1.0)
        if any(photos):
            require_encoder(run, "interpolating between photos")
        ends, labels = [], []
        for seed, photo, which in zip(seeds, photos, "AB", strict=True):
            if photo:
                face = self.photo(name, photo, detect_faces)
                ends.append(run.encode(face.image[None]))
                labels.append(f"photo {which}")
            else:
                ends.append(self._latents(name, seed, 1, sampler, 0.0))
                labels.append(f"seed {_bounded_int(seed, 'seed', 0, MAX_SEED)}")
        slerp = INTERPOLATIONS["slerp"]
        fractions = torch.linspace(0, 1, INTERPOLATION_STEPS, dtype=ends[0].dtype)
        fractions = torch.cat([fractions, torch.tensor([mix], dtype=ends[0].dtype)])
        walk = slerp(ends[0], ends[1], fractions)[0]  # (T + 1, D): the steps, then the mix
        faces = upscale(to_uint8(run.decode(walk)), SHOWN_SIDE)  # (T + 1, S, S, 3)
        columns = [f"{float(t):.1f}" for t in fractions[:-1]]
        columns[0], columns[-1] = labels
        title = f"slerp walk from {labels[0]} to {labels[1]}, {INTERPOLATION_STEPS} steps"
        strip = labelled_grid(faces[None, :-1], column_labels=columns, title=title)
        return faces[-1], strip, self._write_gif(faces[:-1])

    def edit(
        self,
        name: str,
        strengths: Mapping[str, float],
        *,
        seed: int = 0,
        photo: str | None = None,
        detect_faces: bool = True,
    ) -> np.ndarray:
        """A face (from ``seed``, or an uploaded photo for models with an encoder) before
        and after moving it along the run's attribute directions by ``strengths`` (in
        standard deviations): a labelled uint8 picture."""
        run = self.run(name)
        if not self._directions[name]:
            raise FacegenError(no_directions_message(run))
        columns, shown = [], []
        if photo:
            require_encoder(run, "editing a photo")
            face = self.photo(name, photo, detect_faces)
            base = run.encode(face.image[None])  # (1, D)
            shown.append(face.image[None])
            columns += ["photo", "encoded"]
        else:
            base = self._latents(name, seed, 1, None, 0.0)
            columns.append(f"seed {seed}")
        edited, moves = self.move(name, base, strengths)
        shown.append(run.decode(torch.cat([base, edited])))
        columns.append("edited" if moves else "edited (all sliders at 0)")
        faces = to_uint8(torch.cat(shown))[None]  # (1, V, S, S, 3)
        title = ", ".join(f"{a} {s:+.2g} sd" for a, s in moves.items()) or "no edit"
        return labelled_grid(faces, column_labels=columns, title=title, min_side=SHOWN_SIDE)

    def move(
        self, name: str, z: torch.Tensor, strengths: Mapping[str, float]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Latents ``z`` (N, D) moved along the run's attribute directions by ``strengths``
        (standard deviations, within +-MAX_STRENGTH); returns them and the non-zero moves."""
        directions = self._directions[name]
        moved, moves = z.clone(), {}
        for attribute, strength in strengths.items():
            if attribute not in directions:
                known = ", ".join(sorted(directions)) or "none"
                raise FacegenError(f"{name} has no {attribute} direction; it has: {known}")
            strength = _bounded_float(strength, attribute, -MAX_STRENGTH, MAX_STRENGTH)
            if strength:
                direction = directions[attribute]
                moved += strength * direction.scale * direction.vector.to(z.dtype)
                moves[attribute] = strength
        return moved, moves

    def reconstruct(self, name: str, photo: str | None, detect_faces: bool = True) -> np.ndarray:
        """An uploaded photo, cropped as ``data prepare`` frames faces, beside the model's
        reconstruction of it; the title gives MSE and PSNR."""
        run = self.run(name)
        require_encoder(run, "reconstructing a photo")
        if not photo:
            raise FacegenError("upload a photo first")
        face = self.photo(name, photo, detect_faces)
        pair = to_uint8(torch.stack([face.image, run.reconstruct(face.image[None])[0]]))
        mse = float(mean_squared_error(pair[:1], pair[1:])[0])
        psnr = float(peak_signal_noise_ratio(pair[:1], pair[1:])[0])
        title = f"MSE {mse:.4f}, PSNR {psnr:.1f} dB (pixels on a 0-1 scale)"
        return labelled_grid(
            pair[None], column_labels=["photo (cropped)", "reconstruction"], title=title,
            min_side=SHOWN_SIDE,
        )  # fmt: skip

    def photo(self, name: str, path: str, detect_faces: bool = True) -> Photo:
        """An uploaded photo framed for the run: the largest face found and aligned like
        CelebA's (``detect_faces``), then the run's crop; or just the crop."""
        run = self.run(name)
        try:
            with Image.open(path) as opened:
                pixels = opened.size[0] * opened.size[1]
        except FileNotFoundError:
            raise FacegenError("the upload went missing; upload the photo again") from None
        except (OSError, ValueError, Image.DecompressionBombError):
            raise FacegenError(f"{Path(path).name} is not an image Pillow can read") from None
        if pixels > MAX_PHOTO_PIXELS:
            raise FacegenError(
                f"{Path(path).name} has {pixels / 1e6:.0f} megapixels; the demo takes photos up "
                f"to {MAX_PHOTO_PIXELS / 1e6:.0f}"
            )
        image = read_photo(path, run.model.image_size, run_crop(run), detect_faces=detect_faces)
        return Photo(image, Path(path).name)

    def _latents(
        self, name: str, seed: int, n: int, sampler: str | None, truncation: float
    ) -> torch.Tensor:
        run = self.run(name)
        seed = _bounded_int(seed, "seed", 0, MAX_SEED)
        sampler = sampler or run.default_sampler
        if sampler not in self._samplers[name]:
            raise FacegenError(
                f"{name} has no {sampler!r} sampler; it has: {', '.join(self.samplers(name))}"
            )
        truncation = _bounded_float(truncation or 0.0, "truncation", 0.0, MAX_TRUNCATION)
        return run.latents(n, seed, sampler, truncation or None)

    def _write_gif(self, frames: np.ndarray) -> Path:
        with self._lock:
            self._gif_count += 1
            path = self._gif_folder / f"interpolation-{self._gif_count:06d}.gif"
        return save_gif(frames, path)


def no_directions_message(run: Run) -> str:
    return (
        f"{run.path} has no attribute directions yet; make some with: facegen edit {run.path} "
        "--attribute Smiling --attribute Eyeglasses (GANs also need --classifier)"
    )


def _bounded_int(value: object, what: str, low: int, high: int) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FacegenError(f"{what} must be a whole number, not {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise FacegenError(f"{what} must be a whole number from {low} to {high:,}, not {value}")
    return int(number)


def _bounded_float(value: object, what: str, low: float, high: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FacegenError(f"{what} must be a number, not {value!r}") from None
    if not low <= number <= high:  # also refuses NaN
        raise FacegenError(f"{what} must be between {low:g} and {high:g}, not {value}")
    return number
