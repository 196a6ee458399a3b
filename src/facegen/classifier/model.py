"""The attribute classifier: a small CNN that gives one logit per CelebA attribute.

It labels generated faces (for attribute directions in a GAN's latent space) and checks that
attribute edits do what they say. A positive logit means "the face shows the attribute".
Like facegen's generative models it knows nothing of training and is rebuilt from its
config alone (see :mod:`facegen.classifier.saved`).

>>> classifier = load_classifier("data/synth-64/classifier")
>>> classifier.attribute_logits(images, "Smiling").shape  # images (N, 3, 64, 64) in [-1, 1]
torch.Size([N])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facegen.config import PRECISIONS, check_device
from facegen.data.celeba import ATTRIBUTE_NAMES
from facegen.errors import FacegenError
from facegen.models.base import check_image_size
from facegen.models.blocks import ConvEncoder, stage_widths
from facegen.run import in_batches
from facegen.settings import Settings, setting

INFERENCE_BATCH = 256
MAX_WIDTH_MULTIPLE = 8  # channels stop doubling at 8 * width (256 at the default 32)


@dataclass
class ClassifierConfig(Settings):
    """The network (``image_size``, ``width``, ``attribute_names``) and how it is trained.

    One config for both, because the caller sets them together and the training fields are
    a record worth keeping beside the weights; the network reads only the first three.
    ``image_size`` ``None`` means the data set's size and ``attribute_names`` ``None``
    every attribute that takes both values in the training split; :func:`train_classifier`
    resolves both before it builds the network. Checked when made (:mod:`facegen.settings`).
    """

    image_size: int | None = None
    width: int = setting(32, at_least=1)
    attribute_names: tuple[str, ...] | None = None
    # Training
    steps: int = setting(1500, at_least=1)
    batch_size: int = setting(64, at_least=1)
    lr: float = setting(2e-3, above=0)
    weight_decay: float = setting(1e-4, at_least=0)
    warmup_steps: int = setting(50, at_least=0)
    seed: int = setting(0, at_least=0)
    device: str = "auto"
    precision: str = setting("auto", choices=PRECISIONS)
    flip: bool = True
    channels_last: bool = True

    def check(self) -> None:
        """The image size and device by their own rules, and attributes by name."""
        if self.image_size is not None:
            check_image_size(self.image_size)
        check_device(self.device)
        if self.attribute_names is not None:
            unknown = [name for name in self.attribute_names if name not in ATTRIBUTE_NAMES]
            if unknown or not self.attribute_names:
                raise FacegenError(
                    f"unknown attribute {', '.join(unknown) or '(none given)'}; "
                    f"choose among: {', '.join(ATTRIBUTE_NAMES)}"
                )


class AttributeClassifier(nn.Module):
    """Images (B, 3, S, S) in [-1, 1] -> logits (B, A), one per ``attribute_names``.

    The features are facegen's :class:`~facegen.models.blocks.ConvEncoder` (one 4x4
    stride-2 convolution + BatchNorm + LeakyReLU per halving, down to 4x4), with channels
    doubling from ``width`` up to 8 * ``width``; a linear head reads the flattened 4x4 map
    rather than a global average, because where a feature is matters (a hat sits on top, a
    smile at the bottom). Extra 3x3 convolutions per stage cost three times the time on a
    CPU and gained nothing measurable on the synthetic faces.

    ``test_accuracy`` holds the held-out accuracy per attribute of a loaded classifier.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        config.validate()
        if config.image_size is None or not config.attribute_names:
            raise FacegenError("a classifier needs its image_size and attribute_names set")
        self.config = config
        self.test_accuracy: dict[str, float] = {}
        widths = stage_widths(config.image_size, config.width, MAX_WIDTH_MULTIPLE)
        self.features = ConvEncoder(widths)
        self.head = nn.Linear(self.features.out_features, len(config.attribute_names))

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.config.attribute_names or ())

    @property
    def image_size(self) -> int:
        return int(self.config.image_size or 0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (B, A)

    def check_images(self, images: torch.Tensor) -> None:
        """Refuse anything but float images (N, 3, S, S) at this classifier's size."""
        size = self.image_size
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise FacegenError(
                f"expected float images (N, 3, {size}, {size}) in [-1, 1], "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if images.shape[2] != size or images.shape[3] != size:
            raise FacegenError(
                f"this classifier reads {size}x{size} images, not "
                f"{images.shape[2]}x{images.shape[3]}: use one trained on data of that size"
            )

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
        """Logits (N, A) float32 on the CPU, in batches on the classifier's device.

        >>> classifier.logits(faces).shape  # faces (16, 3, 64, 64)
        torch.Size([16, 37])
        """
        self.check_images(images)
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            return in_batches(self, images, device, batch_size)
        finally:
            self.train(was_training)

    def attribute_index(self, name: str) -> int:
        """Column of ``name`` in the logits; one it was not trained on lists those it was."""
        if name in self.attribute_names:
            return self.attribute_names.index(name)
        trained = ", ".join(self.attribute_names)
        if name in ATTRIBUTE_NAMES:
            raise FacegenError(
                f"this classifier was not trained on {name}; it was trained on: {trained}"
            )
        raise FacegenError(f"unknown attribute {name!r}; this classifier was trained on: {trained}")

    def attribute_logits(
        self, images: torch.Tensor, name: str, batch_size: int = INFERENCE_BATCH
    ) -> torch.Tensor:
        """The logit (N,) of attribute ``name``: positive where the face shows it."""
        column = self.attribute_index(name)
        return self.logits(images, batch_size)[:, column]
