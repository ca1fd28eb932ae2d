"""DeviceMesh: ranks laid out on a named grid; each axis gives the group a strategy works on.

`DeviceMesh((2, 2), ("dp", "tp"))` on 4 ranks puts rank r at coordinate divmod(r, 2);
`mesh.group("tp")` is this rank's row (the ranks that differ only in tp).
"""

from __future__ import annotations

import math

from . import comm


class DeviceMesh:
    """Named axes over the world's ranks (row-major: the last axis varies fastest)."""

    def __init__(self, shape, names):
        shape, names = tuple(int(s) for s in shape), tuple(names)
        if len(shape) != len(names):
            raise ValueError(f"DeviceMesh: {len(shape)} sizes but {len(names)} names")
        if len(set(names)) != len(names):
            raise ValueError(f"DeviceMesh: axis names must be distinct, got {names}")
        world = comm.get_world_size()
        if math.prod(shape) != world:
            raise ValueError(f"DeviceMesh: shape {shape} holds {math.prod(shape)} ranks, but the job has {world}. "
                             f"Hint: start it with `ember run -n {math.prod(shape)}`")
        self.shape, self.names = shape, names
        self.rank = comm.get_rank()
        self.coords = self.coord_of(self.rank)
        self._groups = {}
        for i, name in enumerate(names):
            # ranks sharing every other coordinate form one group of this axis
            color = sum(c * math.prod(shape[j + 1:]) for j, c in enumerate(self.coords) if j != i)
            self._groups[name] = comm.split_group(color, self.coords[i], name)

    def coord_of(self, rank: int) -> tuple:
        out = []
        for s in reversed(self.shape):
            rank, c = divmod(rank, s)
            out.append(c)
        return tuple(reversed(out))

    def group(self, name: str) -> comm.ProcessGroup:
        """This rank's group along axis `name`."""
        if name not in self._groups:
            raise KeyError(f"DeviceMesh has axes {self.names}, not {name!r}")
        return self._groups[name]

    def size(self, name: str) -> int:
        return self.shape[self.names.index(name)]

    def coord(self, name: str) -> int:
        """This rank's index along axis `name`."""
        return self.coords[self.names.index(name)]

    def __repr__(self) -> str:
        return f"DeviceMesh({dict(zip(self.names, self.shape))}, rank={self.rank} at {self.coords})"
