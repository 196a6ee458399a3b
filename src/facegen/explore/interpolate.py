"""Walking between two latents: random ones, or the encodings of two real photos.

``slerp`` follows the great circle between the two latents (White 2016, "Sampling
generative networks"): with a Gaussian prior, the straight line's midpoint has a norm
about 1/sqrt(2) of a typical latent's, so ``lerp`` passes through unusually "average",
washed-out faces that ``slerp`` avoids.

>>> walk = interpolate(run, pairs=4, steps=10, method="slerp", seed=0)
>>> save_png(walk.picture(), "interp.png"); save_gif(walk.frames(), "interp.gif")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.data.align import NoFaceError
from facegen.data.decode import Crop, decode_face, describe_error
from facegen.data.loader import from_uint8, to_uint8
from facegen.errors import FacegenError
from facegen.explore.common import require_encoder
from facegen.registry import choose
from facegen.run import Run
from facegen.viz.grid import image_grid, labelled_grid

Interpolation = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Below this angle (radians) between the ends, slerp's sin(angle) divides by almost zero;
# the arc is then a straight line for all purposes.
PARALLEL_ANGLE = 1e-4


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight lines: ends (N, D) and fractions (T,) -> (N, T, D); t=0 is ``a``, t=1 ``b``."""
    a64, b64, t64 = a.double()[:, None], b.double()[:, None], t.double()[None, :, None]
    path = a64 + (b64 - a64) * t64  # (N, T, D)
    return _exact_ends(path, a, b, t)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great circles: ends (N, D) and fractions (T,) -> (N, T, D). The angle moves evenly
    from ``a`` to ``b`` while the norm goes linearly from |a| to |b|."""
    a64, b64 = a.double(), b.double()
    norm_a, norm_b = a64.norm(dim=1, keepdim=True), b64.norm(dim=1, keepdim=True)  # (N, 1)
    unit_a, unit_b = a64 / norm_a.clamp_min(1e-12), b64 / norm_b.clamp_min(1e-12)
    angle = torch.arccos((unit_a * unit_b).sum(dim=1).clamp(-1.0, 1.0))[:, None, None]  # (N,1,1)
    t64 = t.double()[None, :, None]  # (1, T, 1)
    sin = torch.sin(angle)
    straight = sin.abs() < PARALLEL_ANGLE
    safe_sin = torch.where(straight, torch.ones_like(sin), sin)
    weight_a = torch.where(straight, 1 - t64, torch.sin((1 - t64) * angle) / safe_sin)
    weight_b = torch.where(straight, t64, torch.sin(t64 * angle) / safe_sin)
    direction = weight_a * unit_a[:, None] + weight_b * unit_b[:, None]  # (N, T, D)
    direction = direction / direction.norm(dim=2, keepdim=True).clamp_min(1e-12)
    norm = norm_a[:, None] + (norm_b - norm_a)[:, None] * t64  # (N, T, 1)
    return _exact_ends(direction * norm, a, b, t)


def _exact_ends(path: torch.Tensor, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor):
    """``path`` in the ends' dtype, with t=0 and t=1 set to the ends bit for bit (so the
    walk's first and last faces are exactly the ends' own)."""
    path = path.to(a.dtype)
    path[:, t == 0] = a[:, None]
    path[:, t == 1] = b[:, None]
    return path


# The two paths there are between two latents, chosen with --method: a dict, not a registry.
INTERPOLATIONS: dict[str, Interpolation] = {"lerp": lerp, "slerp": slerp}


@dataclass
class Walk:
    """Faces along P paths of T steps."""

    images: torch.Tensor  # (P, T, 3, S, S) in [-1, 1]
    latents: torch.Tensor  # (P, T, D)
    fractions: torch.Tensor  # (T,) from 0 to 1
    method: str
    ends: tuple[str, str] = ("start", "end")  # what the first and last columns are
    photos: torch.Tensor | None = None  # (2, 3, S, S): the photos walked between, if any
    row_labels: list[str] = field(default_factory=list)

    def picture(self) -> np.ndarray:
        """One row per path; columns labelled by their fraction, the ends by what they are.
        With photos, the cropped photos stand at both ends of the row."""
        paths, steps = self.images.shape[:2]
        faces = to_uint8(self.images.flatten(0, 1))
        faces = faces.reshape(paths, steps, *faces.shape[1:])  # (P, T, S, S, 3)
        labels = [f"{float(t):.2f}" for t in self.fractions]
        labels[0], labels[-1] = f"{self.ends[0]} (0)", f"{self.ends[1]} (1)"
        if self.photos is not None:
            photos = to_uint8(self.photos)  # (2, S, S, 3)
            faces = np.concatenate([photos[None, :1], faces, photos[None, 1:]], axis=1)
            labels = ["photo A", *labels, "photo B"]
        title = f"{self.method} interpolation, {self.images.shape[1]} steps"
        return labelled_grid(faces, self.row_labels or None, labels, title=title)

    def frames(self) -> np.ndarray:
        """GIF frames [T, H, W, 3]: at step t, every path's face side by side."""
        return np.stack(
            [
                image_grid(to_uint8(self.images[:, t]), columns=len(self.images))
                for t in range(len(self.fractions))
            ]
        )


def read_photo(
    path: str | Path, size: int, crop: Crop, *, detect_faces: bool = False
) -> torch.Tensor:
    """A photo cropped and resized exactly as ``data prepare`` frames faces: (3, S, S).
    With ``detect_faces``, the largest face is first found and aligned like CelebA's
    (``data prepare --detect-faces``)."""
    try:
        face = decode_face(str(path), size, crop, detect_faces=detect_faces)
    except FileNotFoundError:
        raise FacegenError(f"{path} does not exist") from None
    except NoFaceError:
        raise FacegenError(
            f"no face found in {Path(path).name}: use a photo where a face looks at the camera"
            ", or turn face detection off for photos already cropped like CelebA's"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise FacegenError(
            f"{path} could not be read as an image: {describe_error(error)}"
        ) from None
    return from_uint8(np.array(face)[None])[0]  # a copy: Pillow's array is read-only


def run_crop(run: Run) -> Crop:
    """The crop of the data set the run was trained on (CelebA's 140 box by default)."""
    return Crop.parse(run.config.get("data", {}).get("crop") or "140")


def interpolate(
    run: Run,
    *,
    pairs: int = 4,
    steps: int = 10,
    method: str = "slerp",
    seed: int = 0,
    sampler: str | None = None,
    photos: Sequence[str | Path] | None = None,
    crop: Crop | None = None,
    detect_faces: bool = False,
    batch_size: int = 64,
) -> Walk:
    """Faces along ``pairs`` paths of ``steps`` between random latents drawn from ``seed``;
    or, with ``photos=(A, B)`` (models with an encoder), one path between their encodings
    (their faces found and aligned first with ``detect_faces``).
    """
    if steps < 2:
        raise FacegenError(f"an interpolation needs at least 2 steps, not {steps}")
    if pairs < 1:
        raise FacegenError(f"pairs must be at least 1, not {pairs}")
    walk_between = choose(INTERPOLATIONS, method, "interpolation method")
    fractions = torch.linspace(0, 1, steps, dtype=torch.float64)
    photo_images = None
    if photos is not None:
        if len(photos) != 2:
            raise FacegenError("give two photos: --from IMG --to IMG")
        require_encoder(run, "interpolating between photos")
        size = run.model.image_size
        photo_images = torch.stack(
            [read_photo(p, size, crop or run_crop(run), detect_faces=detect_faces) for p in photos]
        )
        z = run.encode(photo_images, batch_size)  # (2, D)
        starts, ends = z[:1], z[1:]
        row_labels = [f"{Path(photos[0]).name} to {Path(photos[1]).name}"]
    else:
        z = run.latents(2 * pairs, seed, sampler)  # (2P, D)
        starts, ends = z[0::2], z[1::2]
        row_labels = [f"pair {i + 1}" for i in range(pairs)]
    latents = walk_between(starts, ends, fractions.to(starts.dtype))  # (P, T, D)
    images = run.decode(latents.flatten(0, 1), batch_size).unflatten(0, latents.shape[:2])
    return Walk(
        images=images,
        latents=latents,
        fractions=fractions,
        method=method,
        ends=("A", "B") if photos is not None else ("start", "end"),
        photos=photo_images,
        row_labels=row_labels,
    )
