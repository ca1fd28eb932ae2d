"""ember.save / ember.load: safetensors round trips, interop with the safetensors package, corrupt files,
atomic writes."""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy as stnp
import torch
from safetensors import safe_open
from safetensors.torch import load_file as st_torch_load
from safetensors.torch import save_file as st_torch_save

import ember
import ember.io as eio
from ember.errors import CheckpointError, EmberError

NP_DTYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "bool": np.bool_,
}
SHAPES = [(), (0,), (5,), (3, 4), (2, 3, 4)]


def _sample(name: str, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    npd = np.dtype(NP_DTYPES[name])
    if npd.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    if npd.kind in "iu":
        info = np.iinfo(npd)
        return np.asarray(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=npd))
    a = rng.standard_normal(shape) * 100
    return np.asarray(a).astype(npd)


def _state(names=tuple(NP_DTYPES)) -> dict[str, np.ndarray]:
    return {f"{n}.{i}": _sample(n, s, seed=i) for n in names for i, s in enumerate(SHAPES)}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality (NaN-safe), including dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", list(NP_DTYPES))
def test_round_trip_every_dtype_is_bitwise(tmp_path, name):
    ref = {f"t{i}": _sample(name, s, seed=i) for i, s in enumerate(SHAPES)}
    path = tmp_path / "w.safetensors"
    ember.save({k: ember.from_numpy(v) for k, v in ref.items()}, path)
    got = ember.load(path)
    assert list(got) == list(ref)
    for k, v in ref.items():
        assert isinstance(got[k], ember.Tensor)
        assert got[k].dtype.name == name
        assert _same(got[k].numpy(), v), k


def test_special_float_values_survive(tmp_path):
    vals = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 65504.0], dtype=np.float32)
    state = {n: ember.from_numpy(vals.astype(NP_DTYPES[n])) for n in ("float32", "float16", "bfloat16")}
    ember.save(state, tmp_path / "s.safetensors")
    got = ember.load(tmp_path / "s.safetensors")
    for n, t in state.items():
        assert _same(got[n].numpy(), t.numpy())


def test_noncontiguous_and_grad_tensors_are_saved_by_value(tmp_path):
    x = ember.arange(12, dtype=ember.float32).reshape(3, 4).t()
    p = ember.randn(3, 2, requires_grad=True)
    ember.save({"x": x, "p": p}, tmp_path / "a.safetensors")
    got = ember.load(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(got["x"].numpy(), x.numpy())
    np.testing.assert_array_equal(got["p"].numpy(), p.detach().numpy())
    assert not got["p"].requires_grad


def test_safetensors_package_reads_ember_files(tmp_path):
    ref = _state(n for n in NP_DTYPES if n != "bfloat16")  # safetensors' numpy API has no bfloat16
    path = tmp_path / "e.safetensors"
    ember.save({k: ember.from_numpy(v) for k, v in ref.items()}, path, metadata={"format": "np", "k": "v"})
    got = stnp.load_file(str(path))
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert _same(got[k], v), k
    with safe_open(str(path), framework="np") as f:
        assert f.metadata() == {"format": "np", "k": "v"}
        assert set(f.keys()) == set(ref)
        assert _same(f.get_tensor("float64.3"), ref["float64.3"])


def test_safetensors_torch_reads_ember_bfloat16(tmp_path):
    a = _sample("bfloat16", (4, 5))
    ember.save({"w": ember.from_numpy(a)}, tmp_path / "b.safetensors")
    got = st_torch_load(str(tmp_path / "b.safetensors"))["w"]
    assert got.dtype == torch.bfloat16
    assert got.view(torch.int16).numpy().tobytes() == a.tobytes()


def test_ember_reads_files_written_by_safetensors(tmp_path):
    ref = _state(n for n in NP_DTYPES if n != "bfloat16")
    path = tmp_path / "s.safetensors"
    stnp.save_file(ref, str(path), metadata={"who": "safetensors"})
    got = ember.load(path)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert _same(got[k].numpy(), v), k
    assert eio.load_metadata(path) == {"who": "safetensors"}
    # bfloat16 through the torch writer
    w = torch.randn(3, 7).to(torch.bfloat16)
    st_torch_save({"w": w}, str(tmp_path / "t.safetensors"))
    e = ember.load(tmp_path / "t.safetensors")["w"]
    assert e.dtype is ember.bfloat16
    assert e.numpy().tobytes() == w.view(torch.int16).numpy().tobytes()


def test_metadata_round_trip_and_validation(tmp_path):
    path = tmp_path / "m.safetensors"
    ember.save({"a": ember.ones(2)}, path, metadata={"step": "7", "note": "héllo"})
    assert eio.load_metadata(path) == {"step": "7", "note": "héllo"}
    ember.save({"a": ember.ones(2)}, path)
    assert eio.load_metadata(path) == {}
    with pytest.raises(TypeError, match="metadata must map str -> str"):
        ember.save({"a": ember.ones(2)}, path, metadata={"step": 7})


def test_header_is_aligned_and_data_is_contiguous(tmp_path):
    path = tmp_path / "a.safetensors"
    ember.save({"b": ember.ones(3, dtype=ember.bool), "d": ember.ones(3, dtype=ember.float64)}, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert header["d"]["data_offsets"][0] % 8 == 0  # widest dtype first keeps float64 aligned


def test_bad_values_are_rejected_before_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="key 'opt' is a dict"):
        ember.save({"w": ember.ones(2), "opt": {"lr": 1}}, path)
    with pytest.raises(TypeError, match="keys must be str"):
        ember.save({1: ember.ones(2)}, path)
    with pytest.raises(ValueError, match="reserved"):
        ember.save({"__metadata__": ember.ones(2)}, path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


# --- corrupt and truncated files ------------------------------------------------------------


def _good_file(tmp_path) -> bytes:
    path = tmp_path / "good.safetensors"
    ember.save({"w": ember.randn(4, 4), "b": ember.zeros(4)}, path)
    return path.read_bytes()


def _load_bytes(tmp_path, raw: bytes, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(raw)
    return ember.load(path)


def _header(raw: bytes) -> dict:
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n])


def _with_header(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + data


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such file"):
        ember.load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a directory, expected a .safetensors file"):
        ember.load(tmp_path)


def test_file_shorter_than_the_length_field(tmp_path):
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: file is 3 bytes, too short"):
        _load_bytes(tmp_path, b"\x01\x02\x03")


def test_header_length_beyond_file_end(tmp_path):
    raw = _good_file(tmp_path)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: bad header length \d+: only 20 bytes"):
        _load_bytes(tmp_path, raw[:28])
    with pytest.raises(CheckpointError, match="bad header length"):
        _load_bytes(tmp_path, (2**40).to_bytes(8, "little") + b"{}")


def test_header_that_is_not_json(tmp_path):
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        _load_bytes(tmp_path, (6).to_bytes(8, "little") + b"{nope}")
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        _load_bytes(tmp_path, (2).to_bytes(8, "little") + b"\xff\xfe")
    with pytest.raises(CheckpointError, match="header is a JSON list"):
        _load_bytes(tmp_path, (2).to_bytes(8, "little") + b"[]")


def test_truncated_data_section_names_the_tensor(tmp_path):
    raw = _good_file(tmp_path)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: tensor '\w': data_offsets .* beyond "
                       r"the end of the file .*truncated"):
        _load_bytes(tmp_path, raw[:-5])


def test_inconsistent_entries(tmp_path):
    raw = _good_file(tmp_path)
    h = _header(raw)
    data = raw[8 + int.from_bytes(raw[:8], "little"):]
    cases = [
        ({"dtype": "F8", "shape": [4], "data_offsets": [0, 16]}, "unsupported dtype 'F8'"),
        ({"dtype": "F32", "shape": [4, -1], "data_offsets": [0, 16]}, "shape must be a list"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "data_offsets must be"),
        ({"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}, "needs 20"),
        ({"dtype": "F32", "shape": [4]}, "must have dtype, shape and data_offsets"),
    ]
    for entry, msg in cases:
        with pytest.raises(CheckpointError, match=msg):
            _load_bytes(tmp_path, _with_header({**h, "b": entry}, data))
    with pytest.raises(CheckpointError, match="__metadata__ must be"):
        _load_bytes(tmp_path, _with_header({**h, "__metadata__": {"a": 1}}, data))


def test_errors_are_ember_errors_and_value_errors(tmp_path):
    with pytest.raises(EmberError):
        _load_bytes(tmp_path, b"")
    with pytest.raises(ValueError):
        _load_bytes(tmp_path, b"")


# --- atomic writes ----------------------------------------------------------------------------


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    old = {"w": ember.arange(6, dtype=ember.float32)}
    ember.save(old, path)
    before = path.read_bytes()
    calls = []

    def boom(arr):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return memoryview(arr.reshape(-1).view(np.uint8))
    monkeypatch.setattr(eio, "_tensor_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        ember.save({"a": ember.randn(100), "b": ember.randn(100)}, path)
    assert len(calls) == 2  # the failure happened halfway through the data
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]  # no temporary file left behind
    np.testing.assert_array_equal(ember.load(path)["w"].numpy(), old["w"].numpy())


def test_interrupted_write_before_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ember.save({"w": ember.ones(3)}, path)
    before = path.read_bytes()

    def no_replace(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(eio.os, "replace", no_replace)
    with pytest.raises(KeyboardInterrupt):
        ember.save({"w": ember.zeros(3)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]
