"""Movement ops: reshape, permute, expand, concatenation, padding, flips and their composites.

reshape, permute and expand return views where the device allows (sharing the version
counter, so an in-place change to either is seen by autograd's checks).
"""

from __future__ import annotations

import math

from .. import dtype as dt
from ..errors import IndexingError, ShapeError, fmt_shape
from ._util import Tensor, apply, norm_dim, norm_dims, promote
from .registry import MOVEMENT, Op, register


def _infer_shape(shape, numel, op="reshape"):
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"{op}: only one dimension can be -1, got {fmt_shape(shape)}")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or numel % rest:
            raise ShapeError(f"{op}: shape {fmt_shape(shape)} is invalid for input of size {numel}")
        shape = tuple(numel // rest if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise ShapeError(f"{op}: shape {fmt_shape(shape)} is invalid for input of size {numel} "
                         f"({math.prod(shape)} elements requested)")
    return shape


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return shape


@register("reshape", MOVEMENT)
class Reshape(Op):
    view = True
    upcast = False

    def shape(x, shape):
        return shape

    def forward(xp, x, shape):
        return xp.reshape(x, shape)

    def backward(ctx, g):
        return g.reshape(ctx.inputs[0].shape)

    def flops(out_shape, x, shape):
        return 0


def reshape(x: Tensor, *shape, _op: str = "reshape") -> Tensor:
    """The same elements in a new shape (one dim may be -1); a view when possible."""
    shape = _infer_shape(_shape_args(shape), x.numel(), _op)
    if shape == x.shape:
        return x
    return apply(Reshape, x, shape=shape)


def view(x: Tensor, *shape) -> Tensor:
    """reshape under torch's name (ember copies a non-contiguous input instead of raising)."""
    return reshape(x, *shape, _op="view")


@register("permute", MOVEMENT)
class Permute(Op):
    view = True
    upcast = False

    def shape(x, dims):
        return tuple(x.shape[d] for d in dims)

    def forward(xp, x, dims):
        return x.transpose(dims)  # the array method skips np.transpose's Python-level wrapper

    def backward(ctx, g):
        inv = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inv[d] = i
        return g.permute(inv)

    def flops(out_shape, x, dims):
        return 0


def permute(x: Tensor, *dims) -> Tensor:
    """Reorder dimensions: out.shape[i] = x.shape[dims[i]]."""
    dims = _shape_args(dims)
    nd = [norm_dim(d, x.ndim, "permute") for d in dims]
    if sorted(nd) != list(range(x.ndim)):
        raise ShapeError(f"permute: dims {tuple(dims)} are not a permutation of the {x.ndim} dims of a "
                         f"tensor of shape {fmt_shape(x.shape)}")
    if nd == list(range(x.ndim)):
        return x
    return apply(Permute, x, dims=tuple(nd))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    d0, d1 = norm_dim(dim0, x.ndim, "transpose"), norm_dim(dim1, x.ndim, "transpose")
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, dims)


def t(x: Tensor) -> Tensor:
    """Transpose of a tensor of at most 2 dims."""
    if x.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dims, got shape {fmt_shape(x.shape)}; use .mT")
    return transpose(x, 0, -1) if x.ndim == 2 else x


@register("expand", MOVEMENT)
class Expand(Op):
    view = True
    upcast = False

    def shape(x, shape):
        return shape

    def forward(xp, x, shape):
        return xp.broadcast_to(x, shape)

    def backward(ctx, g):
        from ._util import reduce_to
        return reduce_to(g, ctx.inputs[0].shape)

    def flops(out_shape, x, shape):
        return 0


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast size-1 dims (and new leading dims) to `shape`; -1 keeps a size. A view, read-only."""
    shape = _shape_args(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: target {fmt_shape(shape)} has fewer dims than the tensor "
                         f"{fmt_shape(x.shape)}")
    out = []
    for i, s in enumerate(shape):
        if i < lead:
            if s == -1:
                raise ShapeError("expand: -1 is not allowed for a new leading dimension")
            out.append(s)
            continue
        cur = x.shape[i - lead]
        if s == -1:
            s = cur
        if cur != s and cur != 1:
            raise ShapeError(f"expand: the size {cur} of dimension {i - lead} of {fmt_shape(x.shape)} must "
                             f"match the target size {s} (or be 1) to expand to {fmt_shape(shape)}")
        out.append(s)
    out = tuple(out)
    return x if out == x.shape else apply(Expand, x, shape=out)


def broadcast_to(x: Tensor, shape) -> Tensor:
    """x expanded to `shape` (a read-only view)."""
    return expand(x, tuple(shape))


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    """x expanded to other's shape."""
    return expand(x, other.shape)


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Remove size-1 dims (only those in `dim` if given)."""
    dims = norm_dims(dim, x.ndim, "squeeze")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at `dim` (negative counts from the end of the result)."""
    d = norm_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = norm_dim(start_dim, x.ndim, "flatten"), norm_dim(end_dim, x.ndim, "flatten")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    """Split dim `dim` into `sizes` (one may be -1)."""
    d = norm_dim(dim, x.ndim, "unflatten")
    sizes = _infer_shape(sizes, x.shape[d], "unflatten")
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


@register("contiguous", MOVEMENT)
class Contiguous(Op):
    upcast = False

    def forward(xp, x):
        return xp.ascontiguousarray(x)

    def backward(ctx, g):
        return g


def contiguous(x: Tensor) -> Tensor:
    """x itself if its buffer is C-contiguous, else a contiguous copy."""
    return x if x._data.flags.c_contiguous else apply(Contiguous, x)


def clone(x: Tensor) -> Tensor:
    """A copy with its own storage (differentiable)."""
    return apply(Contiguous, x) if not x._data.flags.c_contiguous else apply(Copy, x)


@register("copy", MOVEMENT)
class Copy(Op):
    upcast = False

    def forward(xp, x):
        return x.copy()

    def backward(ctx, g):
        return g


@register("cat", MOVEMENT)
def _legacy_empty(x) -> bool:
    # torch skips 1-D tensors of size 0 in cat, whatever the other shapes
    return x.ndim == 1 and x.shape[0] == 0


class Cat(Op):
    upcast = False

    def shape(*xs, dim):
        xs = [x for x in xs if not _legacy_empty(x)] or xs[:1]
        base = xs[0].shape
        for i, x in enumerate(xs):
            if x.ndim != len(base) or any(a != b for j, (a, b) in enumerate(zip(x.shape, base)) if j != dim):
                raise ShapeError(f"cat: tensor {i} has shape {fmt_shape(x.shape)}, which does not match "
                                 f"{fmt_shape(base)} outside dimension {dim}")
        return base[:dim] + (sum(x.shape[dim] for x in xs),) + base[dim + 1:]

    def forward(xp, *xs, dim):
        return xp.concatenate([x for x in xs if not _legacy_empty(x)] or xs[:1], axis=dim)

    def backward(ctx, g):
        out, start = [], 0
        for x in ctx.inputs:
            if _legacy_empty(x) and g.ndim != 1:
                out.append(g.flatten()[:0])
                continue
            n = x.shape[ctx.dim]
            out.append(g.narrow(ctx.dim, start, n))
            start += n
        return tuple(out)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim (dtypes promote)."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ShapeError(f"cat: tensor {i} is zero-dimensional and cannot be concatenated. Hint: use "
                             "stack, or unsqueeze it first")
    first = next((t for t in tensors if not _legacy_empty(t)), tensors[0])
    d = norm_dim(dim, first.ndim, "cat")
    if any(t.dtype is not tensors[0].dtype for t in tensors):
        _, tensors = promote("cat", *tensors)
    Cat.shape(*tensors, dim=d)
    return apply(Cat, *tensors, dim=d)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack: tensor {i} has shape {fmt_shape(t.shape)}, expected every tensor to "
                             f"have shape {fmt_shape(tensors[0].shape)}")
    d = norm_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The slice [start, start+length) of dimension `dim` (a view)."""
    d = norm_dim(dim, x.ndim, "narrow")
    n = x.shape[d]
    if start < -n or start > n or length < 0 or (start % n if n else 0) + length > n:
        raise IndexingError(f"narrow: start {start} + length {length} exceeds dimension {d} of size {n}")
    start = start % n if n and start < 0 else start
    key = (slice(None),) * d + (slice(start, start + length),)
    return x[key]


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of size `split_size` (the last may be smaller), or of the listed sizes."""
    d = norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0:
            raise ValueError(f"split: split_size must be positive, got {s}")
        sizes = [min(s, n - i) for i in range(0, n, s)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ShapeError(f"split: sections {sizes} sum to {sum(sizes)}, but dimension {d} has size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(x, d, start, s))
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split into `chunks` pieces of size ceil(n / chunks) (fewer if n is small)."""
    d = norm_dim(dim, x.ndim, "chunk")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    size = -(-x.shape[d] // chunks)
    return split(x, max(size, 1), d)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """The slices along `dim`, each without that dim."""
    d = norm_dim(dim, x.ndim, "unbind")
    return tuple(x[(slice(None),) * d + (i,)] for i in range(x.shape[d]))


@register("flip", MOVEMENT)
class Flip(Op):
    """Reverse the order along `dims`; a copy, as in torch (NumPy's flip would be a view)."""
    upcast = False

    def forward(xp, x, dims):
        return xp.flip(x, axis=dims).copy()

    def backward(ctx, g):
        return g.flip(ctx.dims)


def flip(x: Tensor, dims) -> Tensor:
    """x with the order of elements reversed along each of `dims` (int or tuple)."""
    return apply(Flip, x, dims=norm_dims(dims, x.ndim, "flip"))


@register("roll", MOVEMENT)
class Roll(Op):
    upcast = False

    def forward(xp, x, shifts, dims):
        return xp.roll(x, shifts, axis=dims)

    def backward(ctx, g):
        return roll(g, tuple(-s for s in ctx.shifts), ctx.dims)


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Rotate elements along dims (the flattened tensor if dims is None)."""
    if dims is None:
        return roll(x.flatten(), shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = tuple(norm_dim(d, x.ndim, "roll") for d in dims)
    return apply(Roll, x, shifts=shifts, dims=dims)


@register("pad", MOVEMENT)
class Pad(Op):
    """Constant padding; `widths` is one (before, after) pair per dim."""
    upcast = False

    def shape(x, widths, value):
        return tuple(s + a + b for s, (a, b) in zip(x.shape, widths))

    def forward(xp, x, widths, value):
        return xp.pad(x, widths, mode="constant", constant_values=value)

    def backward(ctx, g):
        key = tuple(slice(a, a + s) for s, (a, _) in zip(ctx.inputs[0].shape, ctx.widths))
        return g[key]


def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad)//2 dims; `pad` lists (left, right) for the last dim first, as in torch.

    mode: 'constant', 'reflect' or 'replicate' (the last two as index gathers, so their
    gradients accumulate correctly)."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: expected an even number of paddings for at most {x.ndim} dims, got {pad}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        if any(a < 0 or b < 0 for a, b in widths):
            key = tuple(slice(max(-a, 0), s - max(-b, 0)) for s, (a, b) in zip(x.shape, widths))
            x = x[key]
            widths = [(max(a, 0), max(b, 0)) for a, b in widths]
        return apply(Pad, x, widths=tuple(widths), value=value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    from .. import creation
    for d, (a, b) in enumerate(widths):
        if a == 0 and b == 0:
            continue
        n = x.shape[d]
        if mode == "reflect" and (a >= n or b >= n):
            raise ShapeError(f"pad: reflect padding ({a}, {b}) must be smaller than the dimension size {n}")
        idx = list(range(-a, n + b))
        if mode == "reflect":
            idx = [-i if i < 0 else 2 * (n - 1) - i if i >= n else i for i in idx]
        elif mode == "replicate":
            idx = [min(max(i, 0), n - 1) for i in idx]
        else:
            idx = [i % n for i in idx]
        x = x.index_select(d, creation.tensor(idx, dtype=dt.int64))
    return x


def repeat(x: Tensor, *sizes) -> Tensor:
    """Tile the tensor: out.shape[i] = x.shape[i] * sizes[i] (extra leading sizes add dims)."""
    sizes = _shape_args(sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: got {len(sizes)} repeat counts for a tensor with {x.ndim} dims")
    x = reshape(x, (1,) * (len(sizes) - x.ndim) + x.shape)
    inter, final = [], []
    for r, s in zip(sizes, x.shape):
        inter += [r, s]
        final.append(r * s)
    xr = reshape(x, sum(([1, s] for s in x.shape), []))
    return reshape(expand(xr, tuple(inter)).contiguous(), tuple(final))


@register("tril", MOVEMENT)
class Tril(Op):
    upcast = False

    def forward(xp, x, diagonal):
        return xp.tril(x, diagonal)

    def backward(ctx, g):
        return tril(g, ctx.diagonal)


@register("triu", MOVEMENT)
class Triu(Op):
    upcast = False

    def forward(xp, x, diagonal):
        return xp.triu(x, diagonal)

    def backward(ctx, g):
        return triu(g, ctx.diagonal)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """Zero everything above the `diagonal`-th diagonal of the last two dims."""
    if x.ndim < 2:
        raise ShapeError(f"tril: needs at least 2 dims, got shape {fmt_shape(x.shape)}")
    return apply(Tril, x, diagonal=diagonal)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """Zero everything below the `diagonal`-th diagonal of the last two dims."""
    if x.ndim < 2:
        raise ShapeError(f"triu: needs at least 2 dims, got shape {fmt_shape(x.shape)}")
    return apply(Triu, x, diagonal=diagonal)


def mT(x: Tensor) -> Tensor:
    """Transpose of the last two dims."""
    nd = x.ndim
    if nd >= 2:  # always a valid permutation: straight to the op (matmul's backward uses this)
        return apply(Permute, x, dims=tuple(range(nd - 2)) + (nd - 1, nd - 2))
    return transpose(x, -2, -1)


def T(x: Tensor) -> Tensor:
    """All dims reversed (torch's .T)."""
    return permute(x, list(range(x.ndim))[::-1])


def movedim(x: Tensor, source: int, destination: int) -> Tensor:
    """Move dimension `source` to position `destination`, keeping the others in order."""
    s, d = norm_dim(source, x.ndim, "movedim"), norm_dim(destination, x.ndim, "movedim")
    order = [i for i in range(x.ndim) if i != s]
    order.insert(d, s)
    return permute(x, order)
