"""DistributedDataParallel on CPU with gloo: two processes, as `torchrun --nproc_per_node=2`
would start them. The ranks must end with identical weights, only rank 0 writes, a
resumed distributed run continues exactly, and a SIGTERM stops every rank at the same step."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from facegen.config import TrainConfig
from facegen.training.checkpoint import list_checkpoints
from facegen.training.trainer import train
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(
    rank: int, world: int, port: int, config: TrainConfig, out: str, resume: bool, results: str
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = train(config, out, resume=resume, progress=False)
    state = {k: v.clone() for k, v in result.model.state_dict().items()}
    torch.save(state, Path(results) / f"rank{rank}.pt")
    report = {"step": result.step, "exit_code": result.exit_code}
    (Path(results) / f"rank{rank}.json").write_text(json.dumps(report))


def run_ddp(config: TrainConfig, out: Path, results: Path, resume: bool = False) -> list[dict]:
    results.mkdir(parents=True, exist_ok=True)
    args = (2, _free_port(), config, str(out), resume, str(results))
    mp.spawn(_rank, args=args, nprocs=2, join=True)
    return [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("model", ["vae", "dcgan", "aegan"])
def test_two_ranks_stay_identical_and_resume_exactly(faces32, tmp_path, model):
    config = tiny_config(model, faces32, steps=4, checkpoint_every=2, sample_every=2)
    rank0, rank1 = run_ddp(config, tmp_path / "a", tmp_path / "ra")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    run = tmp_path / "a"
    assert (run / "checkpoints" / "training-state-0000004.pt").exists()
    assert (run / "samples" / "step-0000004.png").exists()
    assert len((run / "log.jsonl").read_text().splitlines()) == 2  # one writer, not two

    half = tiny_config(model, faces32, steps=2, checkpoint_every=2, sample_every=2)
    run_ddp(half, tmp_path / "b", tmp_path / "rb")
    resumed, _ = run_ddp(config, tmp_path / "b", tmp_path / "rc", resume=True)
    for key in rank0:
        assert torch.equal(rank0[key], resumed[key]), key


def test_ranks_agree_on_a_clock_driven_lr_decay(faces32, tmp_path):
    # Each rank's own clock would give it its own learning rate, and the weights would part.
    config = tiny_config("ae", faces32, steps=None, time_budget=2.0, lr_decay=1.0)
    rank0, rank1 = run_ddp(config, tmp_path / "a", tmp_path / "ra")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_sigterm_on_one_rank_stops_every_rank_at_the_same_step(faces32, tmp_path):
    """torchrun and SLURM pass SIGTERM to every rank, but one is enough: the ranks agree on
    the step to stop after and on the status to exit with (143), and rank 0 saves there."""
    config = tiny_config("ae", faces32, steps=300, checkpoint_every=1000, sample_every=1000)
    run, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    args = (2, _free_port(), config, str(run), False, str(results))
    ranks = mp.start_processes(_rank, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + 120
    log = run / "log.jsonl"
    while not (log.exists() and log.read_text().strip()):  # both ranks are in their loop
        assert all(p.exitcode is None for p in ranks.processes), "a rank ended first"
        assert time.monotonic() < deadline, "no log line in time"
        time.sleep(0.01)
    os.kill(ranks.processes[1].pid, signal.SIGTERM)  # the rank that writes nothing
    while not ranks.join(timeout=5):
        assert time.monotonic() < deadline + 120, "the ranks did not stop"

    reports = [json.loads((results / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0] == reports[1]
    stopped = reports[0]["step"]
    assert 2 <= stopped < 300 and reports[0]["exit_code"] == 143
    assert [step for step, _ in list_checkpoints(run)] == [stopped]
    rank0, rank1 = (torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(2))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
