"""Energy per training step: static power x time + dynamic energy per FLOP, per BRAM
access and per DRAM byte (constants per device family in configs/model/coefficients.yaml;
static power from the board file). All constants are estimates or placeholders, so the
joules are for ranking designs, not for quoting; reports say so.
"""

from __future__ import annotations

from efgen.frontend.boards import Board
from efgen.model.coeffs import coefficients


def energy_constants(board: Board, precision: str) -> dict[str, float]:
    e = coefficients()["energy"][board.family]
    return {"pj_flop": float(e["pj_per_flop"][precision]),
            "pj_bram": float(e["pj_per_bram_access"]),
            "pj_dram_byte": float(e["pj_per_dram_byte"]),
            "static_w": float(board.power.static_w)}


def energy_joules(seconds, flops, bram_accesses, dram_bytes, k: dict[str, float]):
    """Joules; works elementwise on numpy arrays."""
    return (k["static_w"] * seconds + 1e-12 * (k["pj_flop"] * flops
            + k["pj_bram"] * bram_accesses + k["pj_dram_byte"] * dram_bytes))
