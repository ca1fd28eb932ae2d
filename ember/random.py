"""Seedable random streams: the one source of randomness in ember.

`manual_seed(s)` seeds the default generator; `Generator` objects are independent
streams. A state is a plain dict (JSON-safe), so checkpoints can store it and a
resumed run draws exactly the numbers an uninterrupted run would.
"""

from __future__ import annotations

import numpy as np


class Generator:
    """An independent random stream (PCG64). `Generator().manual_seed(0)` like torch.Generator."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(0 if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        """Reset the stream to the start of `seed`'s sequence; returns self."""
        self._seed = int(seed)
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        """The seed this stream was last reset to."""
        return self._seed

    def get_state(self) -> dict:
        """The stream's position as a JSON-safe dict."""
        s = self._np.bit_generator.state
        return {"seed": self._seed, "state": int(s["state"]["state"]), "inc": int(s["state"]["inc"]),
                "has_uint32": int(s["has_uint32"]), "uinteger": int(s["uinteger"])}

    def set_state(self, state: dict) -> None:
        """Move the stream to a position returned by `get_state`."""
        self._seed = int(state["seed"])
        self._np.bit_generator.state = {
            "bit_generator": "PCG64", "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}

    def fork(self, stream: int) -> Generator:
        """A new generator for sub-stream `stream` (e.g. a rank or a data worker), reproducible from
        this generator's seed alone. ember-specific: torch has no equivalent."""
        seq = np.random.SeedSequence(self._seed, spawn_key=(int(stream),))
        g = Generator.__new__(Generator)
        g._seed = int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))
        g._np = np.random.Generator(np.random.PCG64(g._seed))
        return g

    # --- draws as NumPy float64/int64 arrays; tensor factories cast them -------------------
    def uniform(self, shape, low=0.0, high=1.0) -> np.ndarray:
        """float64 draws uniform on [low, high) of `shape`."""
        return self._np.uniform(low, high, size=shape)

    def normal(self, shape, mean=0.0, std=1.0) -> np.ndarray:
        """float64 normal draws of `shape`."""
        return self._np.normal(mean, std, size=shape)

    def integers(self, low, high, shape) -> np.ndarray:
        """int64 draws uniform on [low, high) of `shape`."""
        return self._np.integers(low, high, size=shape, dtype=np.int64)

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of 0..n-1 (int64)."""
        return self._np.permutation(n)


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (ember.manual_seed(0) as torch.manual_seed(0))."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from the OS and return the seed used."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    default_generator.manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed the default generator was last seeded with."""
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    """State of the default generator (JSON-safe dict)."""
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    """Restore the default generator to `state`."""
    default_generator.set_state(state)


def _gen(generator: Generator | None) -> Generator:
    return default_generator if generator is None else generator
