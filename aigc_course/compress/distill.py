"""Distilling a generator into a smaller one: match the teacher's image for the same $(z, y)$.

Knowledge distillation (Hinton, Vinyals & Dean 2015) for a generator: the student $S$
is trained to draw what the teacher $T$ draws for the *same* noise and label,

$$\\mathcal L(S) = \\mathbb E_{z \\sim \\mathcal N(0, I),\\, y \\sim U\\{0..K-1\\}}
\\big\\lVert S(z, y) - T(z, y) \\big\\rVert_p, \\quad p \\in \\{1, 2\\}$$

in pixels (Aguinaldo et al. 2019, "Compressing GANs using knowledge distillation",
train small generators on a pixel loss to the teacher's image of the same $z$). No
discriminator and no data are needed: the teacher is the data. Chapter 09 calls it to recover the
quality of a channel-pruned generator (:mod:`aigc_course.compress.prune`), and to train
a small student from scratch; any student with the teacher's ``(z, y)`` signature works.

Batch normalisation: the student trains in train mode (batch statistics, running
statistics updated), the teacher runs in eval mode (its running statistics, as when it
samples), so the target of a given $(z, y)$ does not depend on the rest of the batch.

Simplified: a fixed number of Adam steps at a constant learning rate, or decayed to 0
along a cosine (``cosine=True``, what a long run from scratch wants: the shipped student
took 8,000 steps of it); labels uniform over the classes; fresh $(z, y)$ every step, so
there is no overfitting to a fixed set.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from aigc_course.train.ema import EMA
from aigc_course.utils import seeded

Tensor = torch.Tensor
PixelLoss = Literal["l1", "l2"]
PIXEL_LOSSES: tuple[str, ...] = get_args(PixelLoss)


def pixel_loss(student_images: Tensor, teacher_images: Tensor, loss: PixelLoss = "l1") -> Tensor:
    """The distillation loss, a scalar: mean $|S - T|$ (``"l1"``) or mean $(S - T)^2$ (``"l2"``).

    Args:
        student_images, teacher_images: ``(B, C, H, W)`` images in ``[-1, 1]``.
        loss: ``"l1"`` or ``"l2"``.

    Raises:
        ValueError: an unknown ``loss`` (the message lists the valid ones).
    """
    if loss == "l1":
        return F.l1_loss(student_images, teacher_images)            # mean |S - T|
    if loss == "l2":
        return F.mse_loss(student_images, teacher_images)           # mean (S - T)^2
    raise ValueError(f"unknown distillation loss {loss!r}; valid: {', '.join(PIXEL_LOSSES)}")


def distill_generator(student: nn.Module, teacher: nn.Module, steps: int = 300,
                      batch: int = 64, lr: float = 1e-3, seed: int = 0, progress: bool = True,
                      *, loss: PixelLoss = "l1", ema_decay: float = 0.0, cosine: bool = False,
                      latent_dim: int | None = None, num_classes: int | None = None
                      ) -> list[float]:
    """Train ``student`` in place to match ``teacher``'s images for the same $(z, y)$.

    Each step draws $z \\sim \\mathcal N(0, I)$ ``(batch, latent_dim)`` and labels
    ``(batch,)`` uniform over the classes, runs the teacher in eval mode without
    gradients and the student in train mode, then ``zero_grad -> forward -> loss ->
    backward -> step`` with Adam on the student's parameters only.

    Args:
        student: a generator ``student(z, y) -> (B, C, H, W)``; trained in place and left
            in eval mode.
        teacher: the generator to imitate, same signature; unchanged (its mode is restored).
        steps: Adam steps (fixed: contention never changes the result).
        batch: $(z, y)$ pairs per step.
        lr: Adam's learning rate.
        seed: seeds $z$, $y$ and anything random in the student; the caller's random
            state is given back.
        progress: show a ``tqdm`` bar with the loss.
        loss: ``"l1"`` or ``"l2"`` in pixels (:func:`pixel_loss`).
        cosine: decay the learning rate from ``lr`` to 0 along a cosine over ``steps``
            (``torch.optim.lr_scheduler.CosineAnnealingLR``); ``False``: constant.
        ema_decay: keep an EMA of the student's weights (:class:`aigc_course.train.ema.EMA`)
            and leave the student holding it (``0``: no EMA, the last weights).
        latent_dim: dimension of $z$ (``None``: ``teacher.config.latent_dim``).
        num_classes: classes of $y$ (``None``: ``teacher.config.num_classes``; ``0``: an
            unconditional pair, called with ``y=None``).

    Returns:
        The distillation loss of each step (``steps`` values, before that step's update).

    Raises:
        ValueError: ``steps`` or ``batch`` < 1, ``lr`` <= 0, ``ema_decay`` outside
            ``[0, 1)``, an unknown ``loss``, or no ``latent_dim`` to be found.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got {steps}, {batch}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if loss not in PIXEL_LOSSES:
        raise ValueError(f"unknown distillation loss {loss!r}; valid: {', '.join(PIXEL_LOSSES)}")
    config = getattr(teacher, "config", None)
    latent_dim = latent_dim if latent_dim is not None else getattr(config, "latent_dim", None)
    if latent_dim is None:
        raise ValueError("pass latent_dim: the teacher has no config.latent_dim")
    num_classes = (num_classes if num_classes is not None
                   else int(getattr(config, "num_classes", 0)))
    device = next(student.parameters()).device
    teacher_was_training = teacher.training
    teacher.eval()
    ema = EMA(student, ema_decay) if ema_decay else None    # EMA checks the decay's range
    optimiser = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps) if cosine else None
    losses: list[float] = []
    student.train()
    try:
        with seeded(seed) as generator:
            bar = tqdm(range(steps), desc="distil", disable=not progress)
            for _ in bar:
                z = torch.randn(batch, latent_dim, generator=generator).to(device)  # (B, d)
                y = (torch.randint(num_classes, (batch,), generator=generator).to(device)
                     if num_classes else None)                                     # (B,)
                with torch.no_grad():
                    target = teacher(z, y)                         # (B, C, H, W), eval mode
                optimiser.zero_grad()
                value = pixel_loss(student(z, y), target, loss)
                value.backward()
                optimiser.step()
                if schedule is not None:
                    schedule.step()
                if ema is not None:
                    ema.update(student)
                losses.append(value.item())
                if len(losses) % 10 == 0:
                    bar.set_postfix(loss=f"{value.item():.4f}")
    finally:
        teacher.train(teacher_was_training)
    if ema is not None:
        student.load_state_dict(ema.model.state_dict())
    student.eval()
    return losses
