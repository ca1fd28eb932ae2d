"""Indexing: `x[key]` (slices, None, Ellipsis, integer and bool tensors), gather/scatter,
index_select, masked_fill, and the in-place `x[key] = v` for tensors without gradients.

`getitem`'s backward is `index_add` into zeros and vice versa, so indexing is twice
differentiable.
"""

from __future__ import annotations

from .. import dtype as dt
from ..autograd import _Mode
from ..devices import backend
from ..errors import AutogradError, DTypeError, IndexingError, ShapeError, fmt_shape
from ._util import Tensor, apply, as_tensor, broadcast_shapes, const, norm_dim
from .registry import MOVEMENT, Op, register


def _normalize_key(x: Tensor, key) -> tuple:
    """Turn a user key into a tuple of ints, slices, None, Ellipsis, bools and raw index buffers."""
    if not isinstance(key, tuple):
        key = (key,)
    xp = backend(x.device).xp
    out = []
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, (slice, bool, int)):
            out.append(k)
        elif isinstance(k, Tensor):
            if k.dtype.category == 2:
                raise IndexingError(f"index: tensors used as indices must be integer or bool, got {k.dtype}")
            out.append(k._data)
        elif isinstance(k, xp.ndarray):
            if k.dtype.kind not in "iub":
                raise IndexingError(f"index: arrays used as indices must be integer or bool, got {k.dtype}")
            out.append(k)
        elif isinstance(k, list):
            out.append(as_tensor(k, dt.int64 if not k else None)._data)
        elif hasattr(k, "__index__"):
            out.append(k.__index__())
        else:
            raise IndexingError(f"index: unsupported index {k!r} of type {type(k).__name__}; expected an "
                                "int, slice, None, Ellipsis, or an integer or bool tensor")
    return tuple(out)


def _is_basic(key) -> bool:
    return all(isinstance(k, (int, slice)) or k is None or k is Ellipsis for k in key)


def _consumed(k) -> int:
    """How many dims of the indexed tensor one key entry uses up."""
    if k is None or k is Ellipsis or isinstance(k, bool):
        return 0
    if getattr(k, "dtype", None) is not None and k.dtype.kind == "b":
        return k.ndim
    return 1


def _check_bounds(x: Tensor, key) -> None:
    """Raise IndexingError for an index out of range or a mask of the wrong shape, naming the dim."""
    used = sum(_consumed(k) for k in key)
    if used > x.ndim:
        raise IndexingError(f"index: too many indices for a tensor of shape {fmt_shape(x.shape)}: "
                            f"{used} dims indexed")
    dim = 0
    for k in key:
        if k is Ellipsis:
            dim += x.ndim - used
            continue
        if isinstance(k, int) and not isinstance(k, bool):
            n = x.shape[dim]
            if not -n <= k < n:
                raise IndexingError(f"index {k} is out of bounds for dimension {dim} with size {n}")
        elif getattr(k, "dtype", None) is not None:
            if k.dtype.kind == "b":
                want = x.shape[dim:dim + k.ndim]
                if k.shape != want:
                    raise IndexingError(f"index: mask of shape {fmt_shape(k.shape)} does not match the "
                                        f"indexed shape {fmt_shape(want)} at dimension {dim}")
            elif k.size:
                n = x.shape[dim]
                bad = (k >= n) | (k < -n)
                if bad.any():
                    raise IndexingError(f"index {int(k[bad].reshape(-1)[0])} is out of bounds for dimension "
                                        f"{dim} with size {n}")
        dim += _consumed(k)


@register("getitem", MOVEMENT)
class GetItem(Op):
    """x[key]; a view for basic keys (ints, slices, None, Ellipsis)."""
    upcast = False
    view = True

    def shape(x, key):
        _check_bounds(x, key)
        # index a zero-stride stand-in of x's shape: costs only the output's size
        xp = backend(x.device).xp
        return xp.broadcast_to(xp.empty((), dtype=bool), x.shape)[key].shape

    def forward(xp, x, key):
        out = x[key]
        if not isinstance(out, xp.ndarray):  # all-int keys give a NumPy scalar: ask for a 0-d view instead
            out = x[key + (Ellipsis,)]
        return out

    def backward(ctx, g):
        x = ctx.inputs[0]
        return index_add_into(g, x.shape, ctx.key)


@register("index_add_into", MOVEMENT)
class IndexAddInto(Op):
    """zeros(shape) with `g` added at `key` (duplicates accumulate): the backward of getitem."""
    upcast = False

    def shape(g, shape, key):
        return shape

    def forward(xp, g, shape, key):
        out = xp.zeros(shape, dtype=g.dtype)
        if not any(getattr(k, "dtype", None) is not None and k.dtype.kind in "iu" for k in key):
            out[key] = g  # slices and masks address each element once: plain assignment
        else:
            xp.add.at(out, key, g)
        return out

    def backward(ctx, g):
        return g[ctx.key] if _is_basic(ctx.key) else apply(GetItem, g, key=ctx.key)


def index_add_into(g: Tensor, shape, key) -> Tensor:
    """zeros(shape) with g added at `key` (repeated indices accumulate): getitem's backward."""
    return apply(IndexAddInto, g, shape=tuple(shape), key=key)


def _basic_key_ranges(shape, key) -> list | None:
    """The indices a basic key (ints, slices, None, Ellipsis) selects in each dim of `shape`, as one
    `range` per dim; None for any other key (index arrays, masks, bools)."""
    if not isinstance(key, tuple) or any(isinstance(k, bool) or not (isinstance(k, (int, slice)) or k is None
                                                                       or k is Ellipsis) for k in key):
        return None
    used = sum(1 for k in key if isinstance(k, (int, slice)))
    if used > len(shape) or sum(k is Ellipsis for k in key) > 1:
        return None
    out = []
    for k in key:
        if k is Ellipsis:
            out += [range(shape[d]) for d in range(len(out), len(out) + len(shape) - used)]
        elif isinstance(k, slice):
            out.append(range(*k.indices(shape[len(out)])))
        elif isinstance(k, int):
            n = shape[len(out)]
            if not -n <= k < n:
                return None
            out.append(range(k % n, k % n + 1))
    return out + [range(shape[d]) for d in range(len(out), len(shape))]


def _disjoint_basic_keys(shape, keys) -> bool:
    """Whether basic keys into a tensor of `shape` select pairwise disjoint sets of elements."""
    rs = [_basic_key_ranges(shape, k) for k in keys]
    if any(r is None for r in rs):
        return False
    for i in range(len(rs)):
        for j in range(i):  # two boxes are disjoint when some dim's index sets are
            if not any(set(a).isdisjoint(b) for a, b in zip(rs[i], rs[j])):
                return False
    return True


def _gap_keys(shape, keys) -> tuple:
    """Slice keys (one slice per dim) of the boxes of `shape` that no basic key in `keys` selects:
    what must be zero-filled. Splits dim 0 into runs of indices that the same keys select, then
    recurses into the next dim with those keys; a run no key selects is one gap."""
    boxes = [_basic_key_ranges(shape, k) for k in keys]
    out: list = []

    def walk(d, prefix, live):
        if not live:
            out.append(tuple(prefix) + (slice(None),) * (len(shape) - d))
            return
        if d == len(shape):
            return
        sets = [set(boxes[b][d]) for b in live]
        start = 0
        for i in range(1, shape[d] + 1):
            if i == shape[d] or [i in s for s in sets] != [start in s for s in sets]:
                walk(d + 1, prefix + [slice(start, i)], [b for b, s in zip(live, sets) if start in s])
                start = i
    walk(0, [], list(range(len(boxes))))
    return tuple(out)


def _prod_len(ranges) -> int:
    n = 1
    for r in ranges:
        n *= len(r)
    return n


def _view_as(xp, dst, shape):
    """`dst` seen in `shape` without a copy (to write through), or None when its strides forbid it."""
    try:
        return xp.reshape(dst, shape, copy=False)
    except TypeError:  # NumPy < 2.1: no copy= argument
        v = dst.view()
        try:
            v.shape = shape
        except AttributeError:
            return None
        return v
    except ValueError:
        return None


@register("assemble_slices", MOVEMENT)
class AssembleSlices(Op):
    """A tensor of `shape` with each g_i written, in row-major order, into the elements basic key
    `keys[i]` selects (the keys disjoint), and zeros in the boxes `gaps` (see _gap_keys): what a
    sum of index_add_into of disjoint slices (split's backward) computes."""
    upcast = False

    def shape(*gs, shape, keys, gaps):
        xp = backend(gs[0].device).xp
        stand_in = xp.broadcast_to(xp.empty((), dtype=bool), shape)
        for i, (g, key) in enumerate(zip(gs, keys)):
            want = stand_in[key].shape
            if _prod_len([range(n) for n in g.shape]) != _prod_len([range(n) for n in want]):
                raise ShapeError(f"assemble_slices: tensor {i} has shape {fmt_shape(g.shape)} but key {i} "
                                 f"selects {fmt_shape(want)} of {fmt_shape(shape)}")
        return shape

    def forward(xp, *gs, shape, keys, gaps):
        out = xp.empty(shape, dtype=gs[0].dtype)
        for gap in gaps:
            out[gap] = 0
        for g, key in zip(gs, keys):
            dst = out[key]
            if not isinstance(dst, xp.ndarray):  # all-int key: one element
                out[key] = g.reshape(())
            elif dst.shape == g.shape:
                dst[...] = g
            else:  # g in another shape (the compiler folds a reshape in): write through a view
                view = _view_as(xp, dst, g.shape)
                if view is None:
                    dst[...] = g.reshape(dst.shape)
                else:
                    view[...] = g
        return out

    def backward(ctx, g):
        return tuple(g[key].reshape(x.shape) for key, x in zip(ctx.keys, ctx.inputs))


def assemble_slices(gs, shape, keys) -> Tensor:
    """zeros(shape) with gs[i] written at keys[i]; the keys must be basic (ints, slices, None, Ellipsis)
    and select disjoint elements, and gs[i] must have the shape of x[keys[i]] or its number of elements
    (written in row-major order). Equals the sum of index_add_into(gs[i], shape, keys[i]), with no
    zero-fill where the keys cover the whole tensor."""
    gs, shape, keys = list(gs), tuple(shape), tuple(tuple(k) if isinstance(k, tuple) else (k,) for k in keys)
    if not gs or len(gs) != len(keys):
        raise ShapeError(f"assemble_slices: expected one key per tensor and at least one, got {len(gs)} "
                         f"tensors and {len(keys)} keys")
    if any(g.dtype is not gs[0].dtype for g in gs):
        raise DTypeError(f"assemble_slices: all tensors must share one dtype, got {[str(g.dtype) for g in gs]}")
    if not _disjoint_basic_keys(shape, keys):
        raise IndexingError("assemble_slices: keys must be basic (ints, slices, None, Ellipsis) and select "
                            f"disjoint elements of {fmt_shape(shape)}; got {keys!r}. Hint: use "
                            "index_add_into for overlapping or array keys")
    return apply(AssembleSlices, *gs, shape=shape, keys=keys, gaps=_gap_keys(shape, keys))


def getitem(x: Tensor, key) -> Tensor:
    """x[key] with PyTorch/NumPy semantics."""
    k = _normalize_key(x, key)
    _check_bounds(x, k)
    return apply(GetItem, x, key=k)


def setitem(x: Tensor, key, value) -> None:
    """x[key] = value, in place; only for tensors that need no gradient (or under no_grad)."""
    if _Mode.enabled and (x.requires_grad or (isinstance(value, Tensor) and value.requires_grad)):
        raise AutogradError("setitem: in-place assignment x[...] = v on a tensor that requires grad is not "
                            "supported; use ember.where, masked_fill or cat to build a new tensor, or "
                            "wrap the assignment in ember.no_grad()")
    k = _normalize_key(x, key)
    _check_bounds(x, k)
    v = value._data if isinstance(value, Tensor) else value
    if not x._data.flags.writeable:
        raise AutogradError("setitem: the tensor is a read-only view (from expand()); call .clone() first")
    try:
        x._data[k] = v
    except ValueError:
        raise ShapeError(f"setitem: cannot assign a value of shape {fmt_shape(getattr(v, 'shape', ()))} to "
                         f"x[key] of shape {fmt_shape(x._data[k].shape)} (the value must broadcast to it)"
                         ) from None
    x._vc[0] += 1


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of `index` (1-D integer tensor) along `dim`."""
    d = norm_dim(dim, x.ndim, "index_select")
    if index.ndim > 1 or index.dtype.category != 1:
        raise IndexingError(f"index_select: index must be a 1-D integer tensor, got {index.dtype} "
                            f"of shape {fmt_shape(index.shape)}")
    n = x.shape[d]
    if index.numel() and (int(index._data.max()) >= n or int(index._data.min()) < 0):
        raise IndexingError(f"index_select: index out of range for dimension {d} of size {n} "
                            f"(expected 0 <= index < {n})")
    return getitem(x, (slice(None),) * d + (index.reshape(-1),))


def _along(xp, idx, dim):
    """Full index tuple addressing idx's positions with `idx` substituted along `dim`."""
    grids = []
    for d, size in enumerate(idx.shape):
        if d == dim:
            grids.append(idx)
        else:  # arange shaped to broadcast along d only (cheaper than ogrid)
            shape = [1] * idx.ndim
            shape[d] = size
            grids.append(xp.arange(size).reshape(shape))
    return tuple(grids)


def _leading(x, index, dim):
    """x cut to index's extent in every dim but `dim` (gather/scatter only read that block)."""
    if all(i == s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != dim):
        return x
    return x[tuple(slice(None) if d == dim else slice(0, i) for d, i in enumerate(index.shape))]


def _check_gather(name, x, dim, index, src=None):
    if index.dtype.category != 1:
        raise DTypeError(f"{name}: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise ShapeError(f"{name}: index has {index.ndim} dims, expected {x.ndim} like the input "
                         f"{fmt_shape(x.shape)}")
    for what, other in (("input", x), ("src", src)):
        if other is None or not isinstance(other, Tensor):
            continue
        skip = dim if what == "input" else -1
        if other.ndim != index.ndim or any(i > o for d, (i, o) in enumerate(zip(index.shape, other.shape))
                                           if d != skip):
            where_ = f" outside dimension {dim}" if what == "input" else ""
            raise ShapeError(f"{name}: index shape {fmt_shape(index.shape)} is larger than the {what} shape "
                             f"{fmt_shape(other.shape)}{where_}")
    n = x.shape[dim]
    if index.numel() and (int(index._data.max()) >= n or int(index._data.min()) < 0):
        raise IndexingError(f"{name}: index out of range for dimension {dim} with size {n} "
                            f"(expected 0 <= index < {n})")


@register("gather", MOVEMENT)
class Gather(Op):
    """out[i][j][k] = x[i][index[i][j][k]][k] for dim=1."""
    upcast = False

    def shape(x, index, dim):
        return index.shape

    def forward(xp, x, index, dim):
        return xp.take_along_axis(_leading(x, index, dim), index, axis=dim)

    def backward(ctx, g):
        x, index = ctx.inputs
        return scatter_add(const(g, 0).expand(x.shape), ctx.dim, index, g), None


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[i][j] = x[i][index[i][j]] for dim=1: values picked along `dim`; index has x's ndim."""
    d = norm_dim(dim, x.ndim, "gather")
    _check_gather("gather", x, d, index)
    return apply(Gather, x, index, dim=d)


@register("scatter_add", MOVEMENT)
class ScatterAdd(Op):
    """x with src added at index along dim (duplicates accumulate)."""
    upcast = False

    def forward(xp, x, index, src, dim):
        out = x.copy()
        xp.add.at(out, _along(xp, index, dim), src[tuple(slice(0, s) for s in index.shape)])
        return out

    def backward(ctx, g):
        x, index, src = ctx.inputs
        gs = gather(g, ctx.dim, index)
        if gs.shape != src.shape:
            gs = pad_to(gs, src.shape)
        return g, None, gs


@register("scatter", MOVEMENT)
class Scatter(Op):
    """x with src written at index along dim (duplicates: one of them wins)."""
    upcast = False

    def forward(xp, x, index, src, dim):
        out = x.copy()
        xp.put_along_axis(_leading(out, index, dim), index, src[tuple(slice(0, s) for s in index.shape)], dim)
        return out

    def backward(ctx, g):
        x, index, src = ctx.inputs
        gx = scatter(g, ctx.dim, index, const(g, 0).expand(index.shape))
        gs = gather(g, ctx.dim, index)
        if gs.shape != src.shape:
            gs = pad_to(gs, src.shape)
        return gx, None, gs


def pad_to(x: Tensor, shape) -> Tensor:
    """x zero-padded at the end of each dim up to `shape`."""
    from .movement import pad
    widths = []
    for s, t in zip(reversed(x.shape), reversed(shape)):
        widths += [0, t - s]
    return pad(x, widths)


def _src_tensor(x, index, src):
    if isinstance(src, Tensor):
        return src.to(x.dtype)
    return const(x, src).expand(index.shape)


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of x with src added at `index` along `dim` (repeated indices accumulate)."""
    d = norm_dim(dim, x.ndim, "scatter_add")
    _check_gather("scatter_add", x, d, index, src)
    return apply(ScatterAdd, x, index, _src_tensor(x, index, src), dim=d)


def scatter(x: Tensor, dim: int, index: Tensor, src) -> Tensor:
    """Out-of-place scatter: src (tensor or number) written into a copy of x at index along dim."""
    d = norm_dim(dim, x.ndim, "scatter")
    _check_gather("scatter", x, d, index, src)
    return apply(Scatter, x, index, _src_tensor(x, index, src), dim=d)


def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    """x with `value` where mask is true (mask broadcasts)."""
    if mask.dtype is not dt.bool_:
        raise DTypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    from .elementwise import where
    if broadcast_shapes("masked_fill", mask.shape, x.shape) != x.shape:
        raise ShapeError(f"masked_fill: mask of shape {fmt_shape(mask.shape)} does not broadcast to the "
                         f"input's shape {fmt_shape(x.shape)}")
    v = value.to(x.dtype) if isinstance(value, Tensor) else const(x, value)
    return where(mask, v, x)


def take_along_dim(x: Tensor, indices: Tensor, dim: int) -> Tensor:
    """gather(x, dim, indices) under NumPy's name."""
    return gather(x, dim, indices)
