"""Matmul epilogues: `matmul` then `add` of a bias over the last dim becomes one `matmul_bias` node;
an activation of that is `matmul_bias_act`; in the backward, an activation's gradient applied to the
product that computes its incoming gradient (and the bias gradient summed from it) is one
`matmul_act_backward`.

A linear layer traces as a product and a broadcast add. Left apart, the add is a pass of its own over
the product (or the first op of a fused kernel that must read the product back from memory); as
the product's epilogue the library kernel adds the bias to each row block while it is still in cache
(compiler/library.c). Only float32 products whose single use is the add are rewritten: anything
else still needs the product without the bias.
"""

from __future__ import annotations

from ...dtype import float32
from ...ops.linalg import EPILOGUE_ACTIVATION_GRADS, EPILOGUE_ACTIVATIONS
from ...ops.registry import REGISTRY
from ..graph import Graph, Node
from .assemble import _use_counts
from .cse_dce import rename


def matmul_bias(graph: Graph) -> int:
    """Fold bias adds into the matmul that feeds them, directly or through a reshape that keeps the
    last dim (a linear layer on (B, T, C) multiplies (B*T, C) rows); returns how many. The nodes left
    without a use are dropped by the dead-code pass that follows."""
    uses = _use_counts(graph)
    index = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    vals, op, count, mapping = graph.values, REGISTRY["matmul_bias"], 0, {}
    for i, n in enumerate(list(graph.nodes)):
        if n.name != "add" or len(n.inputs) != 2 or n.n_attr_inputs:
            continue
        out = vals[n.outs[0]]
        if not out.shape:
            continue
        for x, bias in (n.inputs, n.inputs[::-1]):
            bv = vals[bias]
            if out.dtype is not float32 or bv.dtype is not float32 or bv.shape != (out.shape[-1],) or \
                    vals[x].shape != out.shape or uses.get(x) != 1 or x not in index:
                continue
            via = graph.nodes[index[x]]  # the matmul, or a reshape of it
            if via.name == "reshape" and not via.n_attr_inputs and uses.get(via.inputs[0]) == 1 and \
                    via.inputs[0] in index and vals[via.inputs[0]].shape[-1] == out.shape[-1]:
                j = index[via.inputs[0]]
                p = graph.nodes[j]
                if p.name != "matmul" or p.n_attr_inputs or index.get(bias, -1) >= j:
                    continue  # the bias must exist before the product is computed
                graph.nodes[j] = Node(op, [*p.inputs, bias], {}, list(p.outs))
                mapping[n.outs[0]] = x  # the add's result is now the reshape's
            elif via.name == "matmul" and not via.n_attr_inputs:
                graph.nodes[i] = Node(op, [*via.inputs, bias], {}, list(n.outs))
            else:
                continue
            count += 1
            break
    rename(graph, mapping)
    return count


# activation nodes an epilogue can take: (op name, its attributes) -> the name matmul_bias_act uses
_ACTIVATIONS = {(op, tuple(sorted(attrs.items()))): act for act, (op, attrs) in EPILOGUE_ACTIVATIONS.items()}
_ACTIVATION_OPS = {op for op, _ in _ACTIVATIONS}


def matmul_bias_act(graph: Graph) -> int:
    """Fold an activation (relu, GELU exact or tanh, tanh, sigmoid, SiLU: EPILOGUE_ACTIVATIONS) of a
    `matmul_bias` result, directly or through views of it (reshape, permute: a linear layer on
    (B, T, C), a convolution's (N*H*W, C_out) product seen as (N, C_out, H, W)), into one
    `matmul_bias_act` node, which also keeps the pre-activation for the activation's backward.
    An elementwise op commutes with views: the same views are replayed on the activated product.
    Returns how many."""
    index = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    vals, op, count = graph.values, REGISTRY["matmul_bias_act"], 0
    replace: dict = {}
    for i, n in enumerate(graph.nodes):
        if n.name not in _ACTIVATION_OPS:
            continue
        act = _ACTIVATIONS.get((n.name, tuple(sorted(n.attrs.items()))))
        if act is None or len(n.inputs) != 1 or n.inputs[0] not in index or vals[n.outs[0]].dtype is not float32:
            continue
        chain, v = [], n.inputs[0]  # the views between the product and the activation, last first
        while v in index and graph.nodes[index[v]].name in ("reshape", "permute") and \
                not graph.nodes[index[v]].n_attr_inputs:
            chain.append(graph.nodes[index[v]])
            v = chain[-1].inputs[0]
        j = index.get(v)
        if j is None or j in replace or graph.nodes[j].name != "matmul_bias":
            continue
        p = graph.nodes[j]
        if not chain:
            replace[j] = [Node(op, list(p.inputs), {"act": act}, [n.outs[0], p.outs[0]])]
            replace[i] = []
        else:
            y = graph.new_value(vals[p.outs[0]].shape, float32, "node")  # act(product), 2-D
            replace[j] = [Node(op, list(p.inputs), {"act": act}, [y, p.outs[0]])]
            views, cur = [], y
            for k, c in enumerate(reversed(chain)):  # the same views of y, the last one the act's value
                out = n.outs[0] if k == len(chain) - 1 else graph.new_value(vals[c.outs[0]].shape, float32, "node")
                views.append(Node(c.op, [cur], dict(c.attrs), [out]))
                graph.aliases[out] = [cur]
                cur = out
            replace[i] = views
        count += 1
    graph.nodes = [m for i, n in enumerate(graph.nodes) for m in replace.get(i, [n])]
    return count


_ACT_GRADS = {(op, tuple(sorted(attrs.items()))): act for act, (op, attrs) in EPILOGUE_ACTIVATION_GRADS.items()}
_ACT_GRAD_OPS = {op for op, _ in _ACT_GRADS}


def matmul_act_backward(graph: Graph) -> int:
    """Fold an activation's backward `op(g, s)` (EPILOGUE_ACTIVATION_GRADS) into the 2-D `matmul`
    that computes g (directly or through a reshape that keeps the last dim), and a `sum` of its
    result over all leading dims (the previous linear layer's bias gradient) with it: one
    `matmul_act_backward` node, which applies both to each row block while it is in cache. Only
    float32 products whose single use is the activation's backward; returns how many."""
    uses = _use_counts(graph)
    index = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    vals, op, count = graph.values, REGISTRY["matmul_act_backward"], 0
    reshape = REGISTRY["reshape"]
    sums = {}  # value -> the node summing it over all leading dims (a bias gradient)
    for i, n in enumerate(graph.nodes):
        if n.name == "sum" and not n.n_attr_inputs and not n.attrs.get("keepdim") and \
                tuple(n.attrs.get("dims") or ()) == tuple(range(len(vals[n.inputs[0]].shape) - 1)):
            sums[n.inputs[0]] = i
    replace: dict = {}
    for i, n in enumerate(graph.nodes):
        if n.name not in _ACT_GRAD_OPS or len(n.inputs) != 2 or n.n_attr_inputs:
            continue
        act = _ACT_GRADS.get((n.name, tuple(sorted(n.attrs.items()))))
        g, s = n.inputs
        out = n.outs[0]
        if act is None or g not in index or uses.get(g) != 1 or vals[out].dtype is not float32 or \
                vals[s].dtype is not float32 or vals[s].shape != vals[out].shape:
            continue
        j = index[g]
        via = graph.nodes[j]
        if via.name == "reshape" and not via.n_attr_inputs and via.inputs[0] in index and \
                uses.get(via.inputs[0]) == 1 and vals[via.inputs[0]].shape[-1:] == vals[out].shape[-1:]:
            j = index[via.inputs[0]]
        else:
            via = None
        p = graph.nodes[j]
        if p.name != "matmul" or p.n_attr_inputs or len(vals[p.outs[0]].shape) != 2 or j in replace:
            continue
        k = sums.get(out)
        dh = graph.new_value(vals[p.outs[0]].shape, float32, "node") if via is not None else out
        fused = Node(op, [*p.inputs, s], {"act": act, "with_sum": k is not None},
                     [dh] + ([graph.nodes[k].outs[0]] if k is not None else []))
        # the product moves to the backward's place: s (and the product's inputs) exist by then
        replace[j] = []
        if via is not None:
            replace[index[g]] = []
            replace[i] = [fused, Node(reshape, [dh], dict(via.attrs), [out])]
            graph.aliases[out] = [dh]
        else:
            replace[i] = [fused]
        if k is not None:
            replace[k] = []
        count += 1
    graph.nodes = [m for i, n in enumerate(graph.nodes) for m in replace.get(i, [n])]
    return count


def _qkv_piece(graph: Graph, index: dict, vid: int):
    """(G, j) if value `vid` is permute(G[j], (0, 2, 1, 3)) for an `sdpa_backward` output G: one of
    dq, dk, dv seen as (B, L, H, E); else None."""
    perm = graph.nodes[index[vid]] if vid in index else None
    if perm is None or perm.name != "permute" or perm.n_attr_inputs or tuple(perm.attrs["dims"]) != (0, 2, 1, 3):
        return None
    item = graph.nodes[index[perm.inputs[0]]] if perm.inputs[0] in index else None
    if item is None or item.name != "getitem" or item.n_attr_inputs or len(item.attrs["key"]) != 1 or \
            not isinstance(item.attrs["key"][0], int) or item.inputs[0] not in index:
        return None
    src = graph.nodes[index[item.inputs[0]]]
    return (item.inputs[0], item.attrs["key"][0]) if src.name == "sdpa_backward" else None


def sdpa_backward_sum(graph: Graph) -> int:
    """Fold the bias gradient of a fused qkv projection, `sum(dims=(0, 1))` of the (B, L, 3 * H * E)
    gradient assembled from an `sdpa_backward`'s dq, dk and dv, into that node: one
    `sdpa_backward_sum` whose second output is the sum laid out (3, H, E), which the library kernel
    adds up per head while the rows are in cache. The sum node becomes a reshape of it. Returns how
    many."""
    index = {o: i for i, n in enumerate(graph.nodes) for o in n.outs}
    vals, op, reshape, count = graph.values, REGISTRY["sdpa_backward_sum"], REGISTRY["reshape"], 0
    replace: dict = {}
    for i, n in enumerate(graph.nodes):
        if n.name != "sum" or n.n_attr_inputs or n.attrs.get("keepdim") or n.inputs[0] not in index or \
                tuple(n.attrs.get("dims") or ()) != (0, 1) or vals[n.outs[0]].dtype is not float32:
            continue
        asm = graph.nodes[index[n.inputs[0]]]
        if asm.name != "assemble_slices" or asm.attrs["gaps"] or len(asm.inputs) != 3:
            continue
        pieces = [_qkv_piece(graph, index, v) for v in asm.inputs]
        if any(p is None for p in pieces) or len({p[0] for p in pieces}) != 1:
            continue
        G = pieces[0][0]
        _, B, H, L, E = vals[G].shape
        whole = slice(None)
        if sorted(p[1] for p in pieces) != [0, 1, 2] or any(
                tuple(key) != (whole, whole, slice(j * H * E, (j + 1) * H * E))
                for (_, j), key in zip(pieces, asm.attrs["keys"])):
            continue
        j = index[G]
        if j in replace:
            continue
        s = graph.new_value((3, H, E), float32, "node")
        bwd = graph.nodes[j]
        replace[j] = [Node(op, list(bwd.inputs), dict(bwd.attrs), [G, s])]
        replace[i] = [Node(reshape, [s], {"shape": vals[n.outs[0]].shape}, list(n.outs))]
        count += 1
    graph.nodes = [m for i, n in enumerate(graph.nodes) for m in replace.get(i, [n])]
    return count
