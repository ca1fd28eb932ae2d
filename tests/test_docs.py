"""The code in README.md and docs/ runs and computes what the text says it does."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from helpers import check_op, gradcheck, gradgradcheck

import ember
from ember.ops import registry
from ember.ops._util import Tensor, apply, float_input

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: str) -> list[str]:
    """The ```python fenced blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


def test_readme_example_runs_and_its_gradients_are_right():
    (block,) = python_blocks("README.md")
    ns: dict = {}
    exec(block, ns)
    t, g, h = ns["t"], ns["g"], ns["h"]
    np.testing.assert_allclose(g.detach().numpy(), 3 * t.detach().numpy() ** 2)
    np.testing.assert_allclose(h.numpy(), 6 * t.detach().numpy())
    assert ns["w"].grad.shape == (3, 2) and ns["b"].grad.shape == (2,)


def test_autograd_doc_examples_give_the_values_in_their_comments():
    blocks = python_blocks("docs/autograd.md")
    ns: dict = {}
    exec(blocks[0], ns)  # x * x summed: grad 2x
    assert ns["x"].grad.tolist() == [2.0, 4.0, 6.0]
    create_graph = next(b for b in blocks if "create_graph=True" in b)
    exec(create_graph, ns)
    assert ns["g"].tolist() == [3.0, 12.0] and ns["h"].tolist() == [6.0, 12.0]


def test_ops_doc_softsign_example_matches_torch_to_second_order():
    """Runs the declaration and frontend exactly as docs/ops.md prints them (registered under a
    scratch name, so a real `softsign` op added later does not clash)."""
    blocks = python_blocks("docs/ops.md")
    decl = next(b for b in blocks if "class Softsign" in b)
    frontend = next(b for b in blocks if "def softsign" in b)

    scratch = "_doc_softsign"

    def register(name, kind=registry.ELEMENTWISE):
        assert name == "softsign"
        return registry.register(scratch, kind)

    ns = {"register": register, "Op": registry.Op, "math": math, "Tensor": Tensor, "apply": apply,
          "float_input": float_input}
    try:
        exec(decl, ns)
    finally:  # keep the registry as the library declares it, for tests that walk every op
        registry.REGISTRY.pop(scratch, None)
    exec(frontend, ns)
    softsign = ns["softsign"]
    check_op(lambda lib, x: softsign(x) if lib is ember else torch.nn.functional.softsign(x), shapes=[(3, 4)])
    x = np.random.default_rng(0).normal(size=(3, 4))
    gradcheck(softsign, [x])
    gradgradcheck(softsign, [x])
    assert ns["Softsign"].flops((3, 4), None) == 36
    assert softsign(ember.tensor([1, -3])).dtype is ember.float32  # integers become the default float
