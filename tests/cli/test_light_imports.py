"""The commands that never need torch start without loading it: `facegen --help` is
instant and `facegen data prepare` runs on a machine without a working torch."""

import subprocess
import sys

import pytest

CHECK = (
    "import sys\n"
    "from facegen.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["data", "prepare", "--help"],
        ["data", "synth", "--help"],
        ["train", "--help"],
        ["eval", "--help"],
    ],
)
def test_help_never_imports_torch(argv):
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "no torch", result.stdout


def test_data_prepare_runs_without_torch(tmp_path):
    """A whole `data synth` + `data prepare` with torch made unimportable."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any `import torch` now fails\n"
        "from facegen.cli import main\n"
        f"assert main(['data', 'synth', {str(tmp_path / 's')!r}, '--n', '20', "
        "'--identities', '4', '--workers', '1']) == 0\n"
        f"assert main(['data', 'prepare', {str(tmp_path / 's')!r}, {str(tmp_path / 'p')!r}, "
        "'--size', '32', '--workers', '1']) == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "p" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "module",
    ["facegen.viz.report", "facegen.metrics.protocol", "facegen.layout", "facegen.config"],
)
def test_report_data_and_config_never_import_torch(module):
    """The report's data, the FID rules and the config read run folders without torch."""
    code = f"import sys, {module}; print('torch loaded' if 'torch' in sys.modules else 'no torch')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no torch"


def test_models_do_not_load_the_data_tools():
    """Building models needs the packed format's sizes, not the face drawer or the packer."""
    code = (
        "import sys, facegen.models, facegen.run\n"
        "print(sorted(m for m in ('facegen.data.synth', 'facegen.data.synth_draw', "
        "'facegen.data.prepare', 'facegen.training.trainer') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
