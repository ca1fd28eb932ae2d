"""Build, cache and fallbacks: no compiler, compiler errors, the cross-process cache, debug dumps."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember
from ember.compiler import CompileError, toolchain


def test_no_c_compiler_warns_once_and_runs_eagerly(monkeypatch):
    monkeypatch.setattr(toolchain, "CC_OVERRIDE", "")
    f = lambda x: (x * 3).exp()  # noqa: E731
    cf = ember.compile(f)
    x0 = ember.randn(4)
    with pytest.warns(UserWarning, match="no C compiler"):
        out = cf(x0)
    np.testing.assert_allclose(out.numpy(), f(x0).numpy())
    import warnings
    x = ember.randn(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, for any signature
        np.testing.assert_allclose(cf(x).numpy(), f(x).numpy())
    assert "no C compiler" in cf.explain()


def test_no_compiler_found_on_an_empty_path(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert toolchain.find_compiler() is None


def test_a_compiler_error_shows_the_source_and_the_message():
    bad = "void k0(void **args) { this is not C; }\n"
    with pytest.raises(CompileError) as e:
        toolchain.build(bad)
    msg = str(e.value)
    assert "this is not C" in msg and "error" in msg


def test_the_cache_is_reused_by_a_second_process(tmp_path):
    script = textwrap.dedent("""
        import ember
        from ember.compiler import toolchain
        cf = ember.compile(lambda x: (x * 2 + 1).tanh().sum(0))
        cf(ember.ones(7, 3))
        print(toolchain.stats["builds"], toolchain.stats["cache_hits"])
    """)
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout.split() == ["1", "0"]  # built once
    assert runs[1].stdout.split() == ["0", "1"]  # compiled nothing, loaded the library
    assert len([p for p in os.listdir(tmp_path / "cache") if p.endswith(".so")]) == 1


def test_ember_debug_dumps_explain_dot_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_DEBUG", "1")
    monkeypatch.setenv("EMBER_DEBUG_DIR", str(tmp_path))
    cf = ember.compile(lambda x: (x + 1).relu())
    cf(ember.randn(3))
    (folder,) = os.listdir(tmp_path)
    files = sorted(os.listdir(tmp_path / folder))
    assert files == ["explain.txt", "graph.dot", "kernels.c"]
    assert "void k0" in (tmp_path / folder / "kernels.c").read_text()


def test_explain_shows_one_kernels_source_on_request():
    cf = ember.compile(lambda x: (x + 1).relu())
    cf(ember.randn(3))
    assert "void k0(void **args)" in cf.explain(kernel="k0")
    assert "#pragma omp" in cf.explain(source=True) or "for (i64" in cf.explain(source=True)
