"""`facegen demo` as a user starts and stops it."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from facegen.cli import main
from tests.demo.test_app import free_port


def test_demo_without_gradio_names_the_extra(runs32, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "gradio" else real_find_spec(name, *args),
    )
    assert main(["demo", str(runs32["vae"].path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "facegen: error: the demo needs Gradio: pip install 'facegen[demo]'"
    )


def test_demo_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["demo", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("facegen: error:") and "is not a facegen run" in error
    assert "\n" not in error


@pytest.mark.slow
def test_demo_serves_until_ctrl_c(runs32):
    port = free_port()
    facegen = Path(sys.executable).parent / "facegen"  # the installed command
    command = [str(facegen), "demo", str(runs32["vae"].path)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C to stop" in line or not line:
                break
        url = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
        assert url, "".join(lines)
        assert lines[0].startswith("loaded vae: vae making 32x32 faces")
        with urllib.request.urlopen(url.group(0), timeout=30) as page:
            assert "facegen demo" in page.read().decode()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert rest.strip().endswith("demo stopped")
    assert "Traceback" not in rest
