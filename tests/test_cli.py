"""The `ember` console script: argparse dispatch and `ember info` (in-process and as a subprocess)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.cli import info as info_cmd
from ember.cli.main import COMMANDS, build_parser, main
from ember.devices import blas
from ember.devices.cpu import CPUBackend


def _numpy_blas_build() -> dict:
    return np.show_config(mode="dicts")["Build Dependencies"]["blas"]


def test_info_table_names_versions_devices_blas_and_compiler(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    rows = dict(line.split(":", 1) for line in out.splitlines())
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["ember"].startswith(ember.__version__ + " ")
    assert rows["python"].startswith(platform.python_version())
    assert rows["numpy"] == np.__version__
    assert rows["devices"] == ", ".join(ember.devices.available())
    assert "cpu" in rows["devices"]
    assert rows["blas"].startswith(_numpy_blas_build()["name"])
    assert rows["threads"].startswith(f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()} cores")
    cc = next((shutil.which(n) for n in ("cc", "gcc", "clang") if shutil.which(n)), None)
    if cc is None:
        assert rows["c compiler"].startswith("none found")
    else:
        assert rows["c compiler"].endswith(f"({cc})")
    from ember.compiler import library
    blas = library.find_blas()
    assert rows["compiled matmul"] == f"{blas.name} sgemm ({blas.path})"


def test_info_json_matches_the_running_interpreter(capsys):
    assert main(["info", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["ember"] == ember.__version__
    assert got["python_path"] == sys.executable
    assert got["numpy"] == np.__version__
    assert got["devices"] == ember.devices.available()
    assert got["blas"]["name"] == _numpy_blas_build()["name"]
    assert got["threads"]["cpu_count"] == os.cpu_count()


def test_info_reports_ember_env_vars(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_DEBUG", raising=False)
    main(["info"])
    assert f"EMBER_CACHE_DIR={tmp_path}" in capsys.readouterr().out


def test_c_compiler_reads_the_first_compiler_on_path(monkeypatch, tmp_path):
    fake = tmp_path / "gcc"
    fake.write_text("#!/bin/sh\necho 'fakegcc 9.9 (test)'\necho second line\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert info_cmd.c_compiler() == {"name": "gcc", "path": str(fake), "version": "fakegcc 9.9 (test)"}


def test_c_compiler_none_when_path_has_no_compiler(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert info_cmd.c_compiler() is None
    main(["info"])
    rows = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert rows["c compiler"].strip().startswith("none found")


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "info" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error():
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


def test_every_command_module_has_a_subparser_with_its_run_function():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [cmd.NAME for cmd in COMMANDS]
    for cmd in COMMANDS:
        assert callable(cmd.run) and callable(cmd.add_arguments) and cmd.HELP
        assert sub.choices[cmd.NAME].get_default("_run") is cmd.run


def test_blas_info_names_numpys_blas():
    info = blas.blas_info()
    build = _numpy_blas_build()
    assert info["name"] == build["name"]
    assert info["version"] == build["version"]
    assert CPUBackend().blas_info().startswith(f"{build['name']} {build['version']}")
    if "openblas" in build["name"]:
        # the loaded library answered: its thread count is what OpenBLAS uses for a GEMM
        assert info["threads"] >= 1 and info["kernel"]


def test_ember_info_subprocess_sees_the_blas_kernel_forced_by_env():
    """Runs the installed console script (or `python -m ember.cli`) once, with OpenBLAS pinned
    to the Haswell kernel: the kernel reported must be the one the loaded library runs, not
    the one NumPy was built for."""
    script = Path(sys.executable).with_name("ember")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ember.cli"]
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", OPENBLAS_NUM_THREADS="1")
    res = subprocess.run(cmd + ["info", "--json"], capture_output=True, text=True, env=env, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["ember"] == ember.__version__
    assert got["blas"]["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    if "DYNAMIC_ARCH" in _numpy_blas_build().get("openblas configuration", ""):
        assert got["blas"]["kernel"] == "Haswell"
        assert got["blas"]["threads"] == 1
