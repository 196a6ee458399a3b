"""Progress bars: tqdm's live bar on a terminal; a few plain lines in a log file or CI."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from tqdm import tqdm

from facegen import progress
from facegen.progress import progress_bar, redraws_in_place


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class JupyterStream(io.StringIO):
    """Stands in for ipykernel's OutStream: not a TTY, yet it redraws a line on '\\r'."""


JupyterStream.__module__ = "ipykernel.iostream"


def count_updates(stream: io.StringIO, total: int | None = 1000, **options) -> str:
    with progress_bar(total=total, desc="train ae", unit="step", file=stream, **options) as bar:
        for step in range(1000):
            bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
            bar.update(1)
    return stream.getvalue()


def test_a_terminal_keeps_tqdms_live_bar():
    terminal = Terminal()
    bar = progress_bar(total=3, file=terminal)
    assert type(bar) is tqdm
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue()


def test_jupyter_output_keeps_the_live_bar():
    assert redraws_in_place(JupyterStream()) and redraws_in_place(Terminal())
    assert not redraws_in_place(io.StringIO())
    assert not redraws_in_place(object())  # a writer without isatty


def test_a_log_gets_a_plain_line_every_twentieth():
    text = count_updates(io.StringIO(), mininterval=0)
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) == 21  # 0%, 5%, ..., 100%
    assert lines[0].startswith("train ae:   0%") and " 0/1000 " in lines[0]
    assert lines[10].startswith("train ae:  50%") and "500/1000" in lines[10]
    assert lines[-1].startswith("train ae: 100%") and "loss=0.001" in lines[-1]


def test_tqdms_refresh_throttle_only_drops_lines():
    # By default tqdm refreshes at most every 0.1 s: a line is due at the next refresh.
    text = count_updates(io.StringIO())
    assert "\r" not in text and 2 <= len(text.splitlines()) <= 21
    assert text.splitlines()[-1].startswith("train ae: 100%")


def test_without_a_total_a_line_each_interval_and_the_last_state(monkeypatch):
    text = count_updates(io.StringIO(), total=None, mininterval=0)
    assert [line.split()[2] for line in text.splitlines()] == ["0step", "1000step"]
    monkeypatch.setattr(progress._LogLines, "SECONDS_BETWEEN_LINES", 0.0)
    assert len(count_updates(io.StringIO(), total=None, mininterval=0).splitlines()) > 100


def test_log_lines_suit_every_way_a_bar_is_used():
    stream = io.StringIO()
    assert list(progress_bar(range(5), desc="encoding", file=stream)) == list(range(5))
    for _ in progress_bar(range(5), desc="gone", file=stream, leave=False):
        tqdm.write("a message in between", file=stream)
    progress_bar(range(5), desc="off", file=stream, disable=True).close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and not any("off" in line for line in lines)
    assert lines[0].startswith("encoding:   0%") and lines[1].startswith("encoding: 100%")
    # Messages stay whole lines; a bar that is not left still shows where it ended.
    assert lines.count("a message in between") == 5 and lines[-1].startswith("gone: 100%")
    assert all(line.startswith(("encoding: ", "gone: ", "a message")) for line in lines)


@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()])
def test_both_kinds_are_tqdm(stream):
    """What call sites rely on: update, set_postfix, a context manager, a tqdm type."""
    with progress_bar(total=2, file=stream) as bar:
        bar.set_postfix(loss="1.0", refresh=False)
        bar.update(2)
    assert isinstance(bar, tqdm) and bar.n == 2


def test_a_real_command_logs_a_few_plain_lines(tmp_path):
    """`facegen data synth` with stderr piped, as in CI: no carriage returns."""
    result = subprocess.run(
        [sys.executable, "-m", "facegen", "data", "synth", str(tmp_path / "s")]
        + ["--n", "40", "--identities", "4", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("synth")]
    assert "\r" not in result.stderr and 2 <= len(lines) <= 21
    assert "40/40" in lines[-1]
