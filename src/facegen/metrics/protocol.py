"""How far FIDs compare, in a module without torch (the report and model cards use it).

FID from fewer than :data:`FID_MIN_N` faces on either side has a rank-deficient covariance
of the Inception features and a bias that depends on the model, so it cannot rank runs;
KID, unbiased at any n, does. Published FIDs use :data:`PUBLISHED_N` generated faces.
"""

from __future__ import annotations

FEATURE_DIM = 2048  # the TF-Inception FID network's pooled features
PUBLISHED_N = 50_000  # published FIDs use 50k generated faces; fewer biases FID upwards
# Below this many faces (generated or real) a covariance of the 2,048 Inception features is
# rank-deficient and FID's bias depends on the model: FID then cannot rank runs, KID does.
FID_MIN_N = FEATURE_DIM


def fid_ranks(n_gen: int, n_real: int) -> bool:
    """Whether an FID from ``n_gen`` generated and ``n_real`` real faces may rank runs: both
    sets must have at least :data:`FID_MIN_N` faces (the report applies the same rule to
    records that older versions wrote without a ``ranks`` field)."""
    return min(n_gen, n_real) >= FID_MIN_N


def fid_faces_text(n_gen: int, n_real: int) -> str:
    """The faces an FID came from, in words: "128 faces", "493 real faces"."""
    if n_gen == n_real:
        return f"{n_gen:,} faces"
    return f"{n_gen:,} generated faces" if n_gen < n_real else f"{n_real:,} real faces"
