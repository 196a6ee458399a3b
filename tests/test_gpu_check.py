"""benchmarks/gpu_check.py, run as a user runs it, with ``--device cpu --tiny``: every kind of
row comes out ok on a CPU before a GPU ever sees the script, a failing check is reported as
FAILED while the others still run, the budget skips what no longer fits, and Ctrl-C stops
the running check and still prints the table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def run_check(*arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def rows(path: Path) -> dict[str, dict]:
    return {row["key"]: row for row in json.loads(path.read_text())["checks"]}


# ----------------------------------------------------------------------- the pure parts


def test_the_error_line_is_facegens_one_line_error():
    text = "some progress\nfacegen: error: d_steps must be at least 1, not 0\n"
    assert (
        gpu_check.first_error_line(text, 2) == "facegen: error: d_steps must be at least 1, not 0"
    )


def test_the_error_line_of_a_traceback_is_its_first_exception():
    # torchrun prints the worker's traceback first, then its own ChildFailedError.
    text = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "trainer.py", line 3, in step',
            "    loss.backward()",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "  more detail",
            "Traceback (most recent call last):",
            '  File "run.py", line 9, in main',
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
        ]
    )
    line = gpu_check.first_error_line(text, 1)
    assert line == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_a_killed_process_says_by_which_signal():
    assert gpu_check.first_error_line("", -9) == "killed by SIGKILL"
    assert gpu_check.first_error_line("", 3) == "exit code 3"
    assert gpu_check.first_error_line("warming up\nlast words\n", 1) == "last words"


def test_training_speed_leaves_out_the_first_window():
    records = [
        {"step": 10, "images_per_second": 5.0},  # compiling
        {"step": 20, "images_per_second": 100.0},
        {"step": 40, "images_per_second": 400.0},
    ]
    # 30 steps in 10/100 + 20/400 of a step-second: 30 / 0.15
    assert gpu_check.steady_images_per_second(records) == pytest.approx(200.0)
    assert gpu_check.steady_images_per_second(records[:1]) == 5.0
    assert gpu_check.steady_images_per_second([]) is None


def test_set_targets_one_preset_or_all():
    parsed = gpu_check._parse_sets(["dcgan-64:d_steps=0", "lr=0.001", "augment=color"])
    assert parsed == [("dcgan-64", "d_steps=0"), (None, "lr=0.001"), (None, "augment=color")]


def test_the_plan_runs_each_kind_once_before_the_repeats():
    args = gpu_check.build_parser().parse_args([])
    names = [check.name for check in gpu_check.GpuCheck(args, dry=True).checks]
    trains = [n for n in names if n.startswith("train ") and not n.endswith("compiled")]
    assert len(trains) == len(gpu_check.GPU_PRESETS) == 10
    first_compiled = names.index("train ae-64 compiled")
    for kind in ("torchrun ae-64", "eval vae-64 n=2,000", "export vae-64 onnx"):
        assert names.index(kind) < first_compiled
    assert names.index("onnxruntime CUDA vae-64") < first_compiled
    assert names.index("torchrun sngan-128") > names.index("train sngan-128 compiled")


def test_a_missing_cuda_provider_is_said_and_is_not_a_failure(tmp_path, capsys):
    args = gpu_check.build_parser().parse_args(
        ["--presets", "vae-64", "--checks", "onnx", "--work", str(tmp_path)]
    )
    check = gpu_check.GpuCheck(args)
    row = next(c for c in check.checks if c.kind == "onnx")
    result = {"onnxruntime": "1.32.0", "available": ["CPUExecutionProvider"], "missing": True}
    (check.logs / f"{row.key}.json").write_text(json.dumps(result))
    row.status = "running"
    check.settle(row, "")
    assert row.status == "CUDA provider not installed"
    assert check.finish(interrupted=False) == 0
    assert "CUDA provider not installed" in capsys.readouterr().out


# --------------------------------------------------------------------- the whole script


@pytest.mark.slow
def test_tiny_cpu_check_runs_every_path_and_reports_a_failure(tmp_path):
    report = tmp_path / "check.json"
    result = run_check(
        *("--presets", "ae-64,dcgan-64", "--set", "dcgan-64:d_steps=0"),
        *("--budget", "900", "--work", str(tmp_path / "work"), "--json", str(report)),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    checks = rows(report)
    for key in (
        "environment",
        "data-synth",
        "data-64",
        "train-ae-64",
        "compile-ae-64",
        "torchrun-ae-64",
        "eval-ae-64",
        "export-ae-64",
        "onnx-ae-64",
    ):
        assert checks[key]["status"] == "ok", (key, checks[key])
    assert checks["train-ae-64"]["images_per_second"] > 0
    assert "torch.compile" in checks["compile-ae-64"]["detail"]
    assert "DDP over 2 processes, gloo" in checks["torchrun-ae-64"]["detail"]
    assert checks["eval-ae-64"]["detail"].startswith("fid ")
    assert "CPU provider" in checks["onnx-ae-64"]["detail"]
    # The injected bad setting fails its own row, with facegen's line, and nothing else.
    failed = checks["train-dcgan-64"]
    assert failed["status"] == "FAILED"
    assert failed["error"] == "facegen: error: d_steps must be at least 1, not 0"
    assert failed["where"] == "start-up (no step logged)"
    assert [key for key, row in checks.items() if row["status"] == "FAILED"] == ["train-dcgan-64"]
    # One table on stdout, with the same rows; the CPU's gloo is named.
    table = result.stdout[result.stdout.index("check  ") :]
    assert "train dcgan-64" in table and "FAILED at start-up" in table
    assert "train ae-64 compiled" in table
    assert "gloo" in table
    assert json.loads(report.read_text())["failed"] == 1


@pytest.mark.slow
def test_the_budget_skips_what_no_longer_fits(tmp_path):
    report = tmp_path / "check.json"
    # A few seconds: the environment probe starts (it is expected to take none), nothing
    # after it fits.
    result = run_check("--presets", "ae-64", "--budget", "3", "--json", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    checks = list(rows(report).values())
    assert all(row["status"] == "skipped: budget" for row in checks[1:]), checks
    assert "skipped: budget" in result.stdout
    assert checks[0]["status"] in ("ok", "skipped: budget")  # the probe may be cut too


@pytest.mark.slow
def test_ctrl_c_stops_the_running_check_and_prints_the_table(tmp_path):
    work = tmp_path / "work"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--presets", "ae-64"]
        + ["--work", str(work), "--checks", "train"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    seen = []
    deadline = time.monotonic() + 120
    for line in process.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if "train ae-64 ..." in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # the training subprocess is running now
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert process.returncode == 130, output
    assert "interrupted: the running check was stopped" in output
    table = output[output.index("check  ") :]
    assert "train ae-64" in table and "interrupted" in table
    # Nothing the check started is left running.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        assert str(work) not in text, text


@pytest.mark.slow
def test_no_gpu_is_one_line_and_exit_code_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--presets", "ae-64", "--work", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "--device cpu --tiny" in result.stderr.strip().splitlines()[-1]
