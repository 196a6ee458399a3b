"""The top-level API a notebook uses: facegen.TrainConfig, train, load_run and evaluate."""

import subprocess
import sys

import pytest

import facegen
from facegen.errors import FacegenError
from facegen.metrics.evaluate import EvalConfig
from tests.conftest import tiny_config


def test_importing_facegen_does_not_load_torch():
    code = "import sys, facegen; facegen.TrainConfig; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_train_load_and_evaluate_from_the_top_level(faces32, tmp_path):
    config = tiny_config("ae", faces32, steps=4)
    assert isinstance(config, facegen.TrainConfig)
    result = facegen.train(config, tmp_path / "ae", progress=False)
    assert result.step == 4 and not result.interrupted

    run = facegen.load_run(tmp_path / "ae")
    assert run.sample(3, seed=1).shape == (3, 3, 32, 32)
    records, _ = facegen.evaluate(
        tmp_path / "ae", n=8, metrics=("recon",), progress=False, write=False
    )
    assert {r["metric"] for r in records} >= {"recon_mse"}
    assert not (tmp_path / "ae" / "metrics.jsonl").exists()  # write=False
    # the same through an open Run and an explicit data set
    again, _ = facegen.evaluate(run, faces32, n=8, metrics=("recon",), progress=False)
    assert [r["value"] for r in again] == [r["value"] for r in records]
    assert (tmp_path / "ae" / "metrics.jsonl").is_file()

    with pytest.raises(FacegenError, match="unexpected keyword argument 'samples'"):
        facegen.evaluate(run, samples=8)
    with pytest.raises(FacegenError, match="not both"):
        facegen.evaluate(run, config=EvalConfig(n=8, metrics=("recon",)), n=8)
