"""The tile order of a recurrent layer's gate rows: how its projection and step kernels index W, R and B.

Rule: the recurrent step (targets/lowering/rnn_step.py) works on tiles of `units`
hidden units and needs, for one tile, every gate of those units side by side. So
the gate rows of W, R and B (ONNX order: direction, gate, unit) are laid out as
direction, tile, gate, unit-in-tile: column `d*G*Hp + (j // U)*G*U + g*U + j % U`
of gate g, unit j, where U = `units` and Hp = `padded` (the hidden size rounded
up to whole tiles; padded units have zero weights and are never read as a state
or written as a result). The input projection's columns (X·Wᵀ for every step)
come out in this order, and R is packed per tile as [dirs, tiles, H, G*U]: the
k-th row of a tile is the G*U weights that multiply h[k]. Constant weights are
permuted with numpy at compile time; weights given at run time are gathered by
the same index math inside the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Expr = Any


@dataclass(frozen=True)
class TileOrder:
    """The column order of `dirs` x `gates` x `hidden` gate rows in tiles of `units` hidden units."""

    dirs: int
    gates: int
    hidden: int
    units: int

    @property
    def tiles(self) -> int:
        return -(-self.hidden // self.units)

    @property
    def padded(self) -> int:
        return self.tiles * self.units

    @property
    def columns(self) -> int:
        return self.dirs * self.gates * self.padded

    def column(self, d: Expr, g: int, unit: Expr) -> Expr:
        """The column of direction `d`, gate `g`, hidden unit `unit` (module rule)."""
        u, g_count = self.units, self.gates
        return d * (g_count * self.padded) + (unit // u) * (g_count * u) + g * u + unit % u

    def source(self, column: Expr) -> tuple[Expr, Expr, Expr]:
        """(direction, gate, unit) of a column: the inverse of `column`."""
        u, g_count = self.units, self.gates
        d, rest = column // (g_count * self.padded), column % (g_count * self.padded)
        tile, in_tile = rest // (g_count * u), rest % (g_count * u)
        return d, in_tile // u, tile * u + in_tile % u

    def rows(self, array: np.ndarray) -> np.ndarray:
        """[dirs, G*H, ...] gate rows -> [dirs*G*Hp, ...] in tile order, padded units zero."""
        rest = array.shape[2:]
        split = array.reshape(self.dirs, self.gates, self.hidden, *rest)
        full = np.zeros((self.dirs, self.gates, self.padded, *rest), array.dtype)
        full[:, :, : self.hidden] = split
        tiled = full.reshape(self.dirs, self.gates, self.tiles, self.units, *rest).swapaxes(1, 2)
        return np.ascontiguousarray(tiled).reshape(self.columns, *rest)

    def recurrent_panels(self, r: np.ndarray) -> np.ndarray:
        """R [dirs, G*H, H] -> [dirs, tiles, H, G*U]: per tile, row k holds the weights of h[k]."""
        tiled = self.rows(r).reshape(self.dirs, self.tiles, self.gates * self.units, self.hidden)
        return np.ascontiguousarray(tiled.transpose(0, 1, 3, 2))
