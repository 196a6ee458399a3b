"""Device, precision and compile decisions (training/machine.py)."""

from __future__ import annotations

import pytest
import torch

from facegen.devices import resolve_device
from facegen.errors import FacegenError
from facegen.training.machine import compile_unavailable, resolve_precision


def test_compile_unavailable_names_the_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-for-facegen")
    problem = compile_unavailable(torch.device("cpu"))
    assert problem is not None and "no-such-compiler-for-facegen" in problem
    assert compile_unavailable(torch.device("cuda", 0)) is None  # Triton, not a C++ compiler


def test_compile_is_available_with_a_compiler_on_the_path(monkeypatch, tmp_path):
    compiler = tmp_path / "fake-cxx"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", "fake-cxx")
    assert compile_unavailable(torch.device("cpu")) is None


def test_cpu_precision_and_device_requests():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")
    with pytest.raises(FacegenError, match="fp16 training needs a GPU"):
        resolve_precision("fp16", torch.device("cpu"))
