"""An exponential moving average (EMA) of a model's weights (Polyak averaging).

$\\theta_\\text{EMA} \\leftarrow d\\,\\theta_\\text{EMA} + (1 - d)\\,\\theta$ after each step;
diffusion models sample from the EMA weights (Ho et al. 2020, appendix B, $d = 0.9999$;
short CPU runs need a shorter memory, e.g. $d = 0.995$). Simplified: buffers are copied,
not averaged; a warm-up $d_k = \\min(d, (1 + k)/(10 + k))$ lets early steps count.
"""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


class EMA(Generic[M]):
    """Keeps ``self.model``, an averaged copy of ``model``; call :meth:`update` after a step."""

    def __init__(self, model: M, decay: float = 0.995) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay, self.steps = decay, 0
        self.model: M = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))         # warm-up
        self.steps += 1
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1 - d)                                # d p_ema + (1-d) p
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, object]:
        """The averaged weights and the step count (what a resumed run restores)."""
        return {"model": self.model.state_dict(), "steps": self.steps, "decay": self.decay}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])  # type: ignore[arg-type]
        self.steps = int(state["steps"])  # type: ignore[call-overload]
