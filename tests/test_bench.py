"""bench/: the timing helpers do what BENCHMARKS.md asks, and each script runs end to end on tiny sizes.

These check that the scripts work and that their tables hold what they claim (ratios that are
the quotient of the printed figures); they assert no speed: benchmarks print figures, tests don't.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest


def _import_bench_scripts():
    """Import bench/*.py as the scripts see each other (`from common import ...`), then take the
    generic names back out of sys.path and sys.modules so no other test imports them by accident."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    names = ("common", "elementwise", "matmul", "overhead")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, bench)
    try:
        mods = [importlib.import_module(n) for n in names]
    finally:
        sys.path.remove(bench)
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return mods


common, elementwise, matmul, overhead = _import_bench_scripts()


def test_compare_interleaves_variants_and_reports_per_call_medians():
    calls = []
    times = common.compare({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                           reps=20, repeats=3, warmup=2)
    assert calls == ["a"] * 2 + ["b"] * 2 + (["a"] * 20 + ["b"] * 20) * 3
    assert set(times) == {"a", "b"}
    for t in times.values():
        assert len(t.repeats) == 3 and t.median == sorted(t.repeats)[1]


def test_compare_refuses_fewer_reps_or_repeats_than_benchmarks_md():
    with pytest.raises(ValueError, match=">= 20 reps"):
        common.compare({"a": lambda: None}, reps=5)
    with pytest.raises(ValueError, match="3 repeats"):
        common.compare({"a": lambda: None}, repeats=2)


def test_timing_spread_and_busy_note():
    t = common.Timing(median=2.0, repeats=(1.8, 2.0, 2.6))
    assert t.spread == pytest.approx(0.4)
    assert common.spread(t) == "40.0%"
    assert common.busy_note([t])[0].startswith("WARNING: a spread of 40%")
    assert common.busy_note([common.Timing(1.0, (0.95, 1.0, 1.05))]) == []


def test_fmt_time_keeps_three_significant_digits():
    assert common.fmt_time(1.234) == "1.23 s"
    assert common.fmt_time(0.0123) == "12.3 ms"
    assert common.fmt_time(4.5e-6) == "4.5 us"
    assert common.fmt_time(3e-9) == "3 ns"


def test_table_aligns_columns():
    out = common.table("T", ["name", "x"], [["a", "1.00x"], ["long name", "2x"]], ["note"])
    lines = out.splitlines()
    assert lines[0] == "T" and lines[-1] == "note"
    assert len({len(line) for line in lines[1:-1]}) == 1  # header, rule and rows equally wide


def test_machine_header_names_cores_blas_and_blas_env(monkeypatch):
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    head = common.machine_header()
    assert re.search(r"\d+ usable of \d+ cores", head)
    assert "OPENBLAS_L2_SIZE=1048576" in head and "OPENBLAS_CORETYPE=unset" in head
    assert "kernel" in head


def _rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "} and line.strip())
    return [re.split(r"\s{2,}", line.strip()) for line in lines[rule + 1:] if re.search(r"\d\.\d+x$", line)]


def test_matmul_script_prints_gflops_ratios(capsys):
    matmul.main(["--n", "64"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert [r[1:3] for r in rows] == [["ember", "numpy"], ["ember", "torch"], ["numpy", "torch"]]
    for r in rows:
        var, ref = (float(c.split()[0]) for c in r[3:5])
        assert float(r[5].rstrip("x")) == pytest.approx(var / ref, rel=0.01, abs=0.006)


def test_overhead_script_checks_gradients_and_prints_fwd_and_bwd(capsys):
    overhead.main(["--ops", "40", "--size", "4"])
    rows = _rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["41 ops 4x4 fwd", "41 ops 4x4 fwd+bwd"]


def test_elementwise_script_runs_every_workload(capsys):
    elementwise.main(["--rows", "8", "--cols", "16"])
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 2 * len(elementwise.WORKLOADS)
