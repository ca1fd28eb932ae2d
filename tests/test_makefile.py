"""The Makefile and .ci/run: dry runs (`make -n`) show a fresh machine gets a venv and the right extras."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run with a venv that does not exist yet."""
    res = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_demo_creates_the_venv_installs_ember_and_trains_the_default_gpt(tmp_path):
    out = _dry_run("demo", tmp_path)
    assert f"-m venv {tmp_path / 'venv'}" in out
    assert "pip install -q -e .\n" in out
    assert "bin/ember train --steps 600 --eval-every 200 --compile --out runs/demo" in out


def test_test_installs_the_test_extra_and_runs_pytest(tmp_path):
    out = _dry_run("test", tmp_path)
    assert f"-m venv {tmp_path / 'venv'}" in out
    assert "install -q -e '.[test]'" in out
    assert "-m pytest -q -n 2  --ignore=tests/distributed || status" in out
    assert "-m pytest -q  tests/distributed || status" in out  # MPI tests alone, after the rest
    assert "slow or not slow" not in out
    assert '-m pytest -q -m "slow or not slow" tests/distributed' in _dry_run("test-all", tmp_path)


def test_bench_runs_each_script_and_mpi_ones_through_ember_run(tmp_path):
    out = _dry_run("bench", tmp_path)
    assert "install -q -e '.[test,bench]'" in out
    for script in ("matmul", "overhead", "elementwise"):
        assert f"bench/{script}.py" in out
    assert "bench/common.py" not in out
    for script in ROOT.glob("bench/*.py"):
        if "usage: ember run -n" in script.read_text():
            assert "ember run -n 2 $f" in out and str(script.relative_to(ROOT)) in out


def test_ci_run_is_strict_bash_that_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    assert "make test" in script
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], timeout=30).returncode == 0
