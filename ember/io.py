"""ember.save / ember.load: flat dicts of tensors in the safetensors format, never pickle.

The format is written and parsed here (8-byte little-endian header length, a JSON header of
name -> {dtype, shape, data_offsets} plus optional "__metadata__", then raw little-endian bytes),
because the safetensors package's NumPy API has no bfloat16. Files are interchangeable with it.
Writes go to a temporary file in the same folder and are renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping

import ml_dtypes
import numpy as np

from . import dtype as dt
from .errors import CheckpointError
from .tensor import Tensor

# safetensors dtype codes <-> NumPy dtypes (stored little-endian)
_CODE_TO_NP = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16), "I32": np.dtype(np.int32), "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16), "BF16": np.dtype(ml_dtypes.bfloat16), "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
}
_NP_TO_CODE = {v: k for k, v in _CODE_TO_NP.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors reader itself enforces
_ALIGN = 8

PathLike = str | os.PathLike


def _as_array(name: str, value) -> np.ndarray:
    """The host NumPy buffer of a state-dict value (ember Tensor or NumPy array), little-endian, C order."""
    if isinstance(value, Tensor):
        arr = np.asarray(value.detach().numpy())
    elif isinstance(value, np.ndarray):
        arr = value
    else:
        raise TypeError(f"ember.save: value for key {name!r} is a {type(value).__name__}, expected an "
                        "ember Tensor or a NumPy array. Hint: flatten nested state (e.g. optimizer state) "
                        "into 'a.b.c' keys, and put non-tensor values in metadata")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.dtype not in _NP_TO_CODE:
        raise TypeError(f"ember.save: key {name!r} has dtype {arr.dtype}, which safetensors cannot hold")
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # ascontiguousarray makes 0-d 1-d


def _tensor_bytes(arr: np.ndarray) -> bytes | memoryview:
    """The raw bytes of a C-contiguous little-endian array (a hook the atomicity test patches)."""
    return memoryview(arr.reshape(-1).view(np.uint8))


def _plan(state_dict: Mapping, metadata: Mapping | None) -> tuple[bytes, list[np.ndarray]]:
    """Validate everything before touching the disk.

    Returns (length field + header bytes, arrays in the order their data is written)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"ember.save: expected a dict of name -> Tensor, got {type(state_dict).__name__}")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"ember.save: keys must be str, got {name!r} ({type(name).__name__})")
        if name == "__metadata__":
            raise ValueError("ember.save: '__metadata__' is reserved by the format; "
                             "pass metadata=... instead")
        arrays[name] = _as_array(name, value)
    # data sorted by item size (widest first) keeps every tensor aligned; header keeps the caller's order
    order = sorted(arrays, key=lambda k: -arrays[k].dtype.itemsize)
    offsets, pos = {}, 0
    for k in order:
        offsets[k] = (pos, pos + arrays[k].nbytes)
        pos += arrays[k].nbytes
    header: dict = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"ember.save: metadata must map str -> str, got {k!r}: {type(v).__name__}. "
                                "Hint: json.dumps structured values")
        header["__metadata__"] = dict(metadata)
    for k, a in arrays.items():
        header[k] = {"dtype": _NP_TO_CODE[a.dtype], "shape": list(a.shape), "data_offsets": list(offsets[k])}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % _ALIGN)
    return len(raw).to_bytes(8, "little") + raw, [arrays[k] for k in order]


def atomic_write(path: PathLike, write: Callable) -> None:
    """Call `write(f)` on a temporary file next to `path`, fsync it, then rename it over `path`.

    On any error the temporary file is removed and an existing `path` is left untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state_dict: Mapping, path: PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a flat dict of tensors to `path` as safetensors, atomically.

    state_dict: name -> Tensor (any dtype, any shape; NumPy arrays are accepted too).
    metadata: optional str -> str pairs stored in the header (`load_metadata` reads them back).
    Unlike torch.save this never pickles: nested or non-tensor values raise TypeError."""
    head, arrays = _plan(state_dict, metadata)

    def write(f):
        f.write(head)
        for a in arrays:
            f.write(_tensor_bytes(a))
    atomic_write(path, write)


def _fail(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"ember.load: {path}: {what}")


def _read_header(f, path: str, size: int) -> tuple[dict, int]:
    """Parse and validate the header; returns (header dict, byte offset where data starts)."""
    if size < 8:
        raise _fail(path, f"file is {size} bytes, too short to hold the 8-byte header length "
                    "(truncated, or not a safetensors file)")
    n = int.from_bytes(f.read(8), "little")
    if n > size - 8:
        raise _fail(path, f"bad header length {n}: only {size - 8} bytes follow the length field "
                    "(truncated, or not a safetensors file)")
    if n > _MAX_HEADER:
        raise _fail(path, f"bad header length {n}: over the {_MAX_HEADER}-byte limit")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, f"header is a JSON {type(header).__name__}, expected an object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict)
                                 and all(isinstance(v, str) for v in meta.values())):
        raise _fail(path, "__metadata__ must be an object of string values")
    return header, 8 + n


def _entry(path: str, name: str, info, data_size: int) -> tuple[np.dtype, tuple, int, int]:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise _fail(path, f"tensor {name!r}: header entry must have dtype, shape and data_offsets, "
                    f"got {info!r}")
    code, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
    if code not in _CODE_TO_NP:
        raise _fail(path, f"tensor {name!r}: unsupported dtype {code!r}; ember reads {sorted(_CODE_TO_NP)}")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise _fail(path, f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
    if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) and o >= 0 for o in offs)
            and offs[0] <= offs[1]):
        raise _fail(path, f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end, "
                    f"got {offs!r}")
    npd = _CODE_TO_NP[code]
    need = int(np.prod(shape, dtype=np.int64)) * npd.itemsize
    if offs[1] - offs[0] != need:
        raise _fail(path, f"tensor {name!r}: data_offsets {offs} span {offs[1] - offs[0]} bytes, but "
                    f"{code} of shape {tuple(shape)} needs {need}")
    if offs[1] > data_size:
        raise _fail(path, f"tensor {name!r}: data_offsets {offs} go beyond the end of the file (data "
                    f"section is {data_size} bytes; the file is truncated)")
    return npd, tuple(shape), offs[0], offs[1]


def _iter_arrays(path: PathLike) -> Iterator[tuple[str, np.ndarray]]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a directory, expected a .safetensors file" if os.path.isdir(path) else "no such file"
        raise CheckpointError(f"ember.load: {path}: {what}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, start = _read_header(f, path, size)
        data_size = size - start
        entries = [(k, _entry(path, k, v, data_size)) for k, v in header.items() if k != "__metadata__"]
        for name, (npd, shape, begin, end) in entries:
            arr = np.empty(shape, dtype=npd)
            f.seek(start + begin)
            got = f.readinto(arr.reshape(-1).view(np.uint8)) if end > begin else 0
            if got != end - begin:
                raise _fail(path, f"tensor {name!r}: read {got} of {end - begin} bytes (truncated)")
            yield name, arr


def load(path: PathLike) -> dict[str, Tensor]:
    """Read a safetensors file into a dict name -> Tensor (cpu), in the header's key order.

    Raises CheckpointError naming the file and what is wrong for missing, truncated or corrupt files."""
    return {name: Tensor._make(arr, dt.from_numpy_dtype(arr.dtype)) for name, arr in _iter_arrays(path)}


def load_metadata(path: PathLike) -> dict[str, str]:
    """The str -> str metadata stored in a safetensors file's header ({} when there is none)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"ember.load_metadata: {path}: no such file")
    with open(path, "rb") as f:
        header, _ = _read_header(f, path, os.path.getsize(path))
    return dict(header.get("__metadata__") or {})
