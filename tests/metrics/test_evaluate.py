"""`facegen eval` end to end on tiny runs: records, protocol, the reference cache,
memorization finding a planted copy, and FID from too few faces ranking nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facegen.cli import main
from facegen.errors import FacegenError
from facegen.metrics import evaluate as evaluate_module
from facegen.metrics import protocol
from facegen.metrics.evaluate import FID_MIN_N, METRICS_FILE, EvalConfig, evaluate
from facegen.metrics.inception import InceptionFeatures
from facegen.metrics.memorization import memorization
from facegen.run import load_run

N = 8


@pytest.fixture(scope="module")
def network() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture
def copy_run(runs32, tmp_path):
    """A private copy of a shared tiny run (eval writes into the run folder)."""

    def make(name: str):
        shutil.copytree(runs32[name].path, tmp_path / name)
        return load_run(tmp_path / name)

    return make


@pytest.mark.slow
def test_a_vae_gets_every_metric_with_its_protocol(copy_run, faces32, network, tmp_path):
    run = copy_run("vae")
    records, notes = evaluate(run, faces32, EvalConfig(n=N), progress=False, network=network)
    names = [r["metric"] for r in records]
    assert names == [
        "fid", "kid", "precision", "recall", "recon_mse", "psnr", "ssim", "recon_fid",
        "memorization",
    ]  # fmt: skip
    values = {r["metric"]: r for r in records}
    assert values["fid"]["value"] > 0 and np.isfinite(values["kid"]["std"])
    assert 0 <= values["precision"]["value"] <= 1 and 0 < values["ssim"]["value"] <= 1
    protocol = values["fid"]["protocol"]
    assert protocol["n_gen"] == N and protocol["n_real"] == N and protocol["split"] == "test"
    assert protocol["feature_network_sha1"] == network.sha1 and protocol["size"] == 32
    assert protocol["comparable_to_published"] is False and protocol["sampler"] == "normal"
    assert values["recon_fid"]["protocol"]["sampler"] is None
    assert any("not comparable to published" in note for note in notes)
    assert (run.path / values["memorization"]["closest_pairs_png"]).is_file()
    lines = (run.path / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["metric"] for line in lines] == names
    assert all({"n_gen", "n_real"} <= json.loads(line)["protocol"].keys() for line in lines)


@pytest.mark.slow
def test_fid_from_too_few_faces_does_not_rank_and_kid_does(copy_run, faces32, network):
    run = copy_run("vae")
    config = EvalConfig(n=N, metrics=("fid", "kid", "recon"))
    evaluate(run, faces32, config, progress=False, network=network)
    written = {r["metric"]: r for r in map(json.loads, (run.path / METRICS_FILE).open())}
    assert N < FID_MIN_N == 2048
    for name in ("fid", "recon_fid"):
        assert written[name]["ranks"] is False and written[name]["value"] > 0
        assert f"from {N} faces, fewer than 2,048" in written[name]["reason"]
    assert written["kid"]["ranks"] is True and "FID's place" in written["kid"]["reason"]
    assert "ranks" not in written["psnr"]  # only the Fréchet distances and KID say


def test_fid_from_enough_faces_ranks(copy_run, faces32, network, monkeypatch):
    # 2,048 faces through Inception take minutes on a CPU: lower the bar to the tiny n.
    monkeypatch.setattr(evaluate_module, "FID_MIN_N", N)
    monkeypatch.setattr(protocol, "FID_MIN_N", N)  # the rule itself lives there
    config = EvalConfig(n=N, metrics=("fid", "kid"))
    records, notes = evaluate(copy_run("ae"), faces32, config, progress=False, network=network)
    assert [(r["metric"], r["ranks"], "reason" in r) for r in records] == [
        ("fid", True, False),
        ("kid", True, False),
    ]
    assert not any("between runs" in note for note in notes)
    assert any("fine for comparing runs evaluated alike" in note for note in notes)


@pytest.mark.slow
def test_reference_features_are_cached_beside_the_data(
    copy_run, faces32, network, monkeypatch, tmp_path
):
    run = copy_run("ae")
    config = EvalConfig(n=N, metrics=("fid",), seed=1)
    first, _ = evaluate(run, faces32, config, progress=False, network=network)
    assert list(faces32.path.glob(f"features-test-{N}-*.npy"))
    calls = []
    real = network.features
    monkeypatch.setattr(
        network,
        "features",
        lambda images, *a, **k: calls.append(len(images)) or real(images, *a, **k),
    )
    second, _ = evaluate(run, faces32, config, progress=False, network=network)
    assert calls == [N]  # only the generated faces: the reference came from the cache
    assert second[0]["value"] == pytest.approx(first[0]["value"], rel=1e-6)
    assert len((run.path / METRICS_FILE).read_text().splitlines()) == 2  # appended


def test_a_gan_skips_reconstruction_with_a_note(copy_run, faces32, network):
    config = EvalConfig(n=N, metrics=("fid", "recon"))
    records, notes = evaluate(copy_run("dcgan"), faces32, config, progress=False, network=network)
    assert [r["metric"] for r in records] == ["fid"]
    assert any("no encoder" in note for note in notes)


def test_bad_requests_are_one_line_errors(runs32, faces32):
    with pytest.raises(FacegenError, match="unknown metric 'is'"):
        EvalConfig(metrics=("fid", "is"))
    with pytest.raises(FacegenError, match="at least 2"):
        EvalConfig(n=1)


def test_memorization_finds_a_planted_copy():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    generated[4] = train[17]
    train_features = rng.normal(size=(50, 16))
    generated_features = rng.normal(size=(10, 16))
    generated_features[4] = train_features[17]
    result = memorization(generated, train, generated_features, train_features)
    assert result.pixel_index[4] == 17 and result.pixel_distance[4] == 0
    assert result.feature_distance[4] == 0
    assert result.summary()["exact_copies"] == 1
    picture = result.closest_pairs(generated, train, count=3)
    assert picture.shape[0] > 2 * 64


def test_cli_prints_the_results_and_where_they_went(copy_run, faces32, capsys):
    run = copy_run("vae")
    code = main(["eval", str(run.path), "--data", str(faces32.path), "--n", str(N),
                 "--metrics", "fid,kid", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "fid" in out and "kid" in out and str(run.path / METRICS_FILE) in out
    lines = out.splitlines()
    assert lines[0].startswith("fid ") and lines[0].endswith(f"  not comparable: {N} faces < 2,048")
    assert lines[1].startswith("kid ") and lines[1].endswith("  ranks runs (in FID's place)")
    assert lines[2] == (
        f"note: fid from {N} faces (n_gen={N}, n_real={N}), fewer than 2,048 (the Inception "
        "feature dimension): computed, but with a rank-deficient covariance and a bias that "
        "depends on the model, so not comparable between runs; KID, unbiased at any n, ranks them"
    )
    code = main(["eval", str(run.path), "--metrics", "fid,bogus", "--quiet"])
    assert code == 2 and "unknown metric 'bogus'" in capsys.readouterr().err
