"""Progressive distillation of a diffusion sampler (Salimans & Ho 2022): half the steps a round.

A student initialised from the teacher learns to do in one DDIM step what the teacher
does in two (Salimans & Ho 2022, "Progressive distillation for fast sampling of
diffusion models", Algorithm 2); the student becomes the next round's teacher, so
16 -> 8 -> 4 -> 2 steps takes three rounds. With $\\alpha_t = \\sqrt{\\bar\\alpha_t}$,
$\\sigma_t = \\sqrt{1 - \\bar\\alpha_t}$ and the teacher's prediction $\\hat x_\\eta(z_t)$ of
the data, one DDIM step is $z_s = \\alpha_s \\hat x_\\eta(z_t) + \\frac{\\sigma_s}{\\sigma_t}
(z_t - \\alpha_t \\hat x_\\eta(z_t))$ (Algorithm 2, "2 steps of DDIM with teacher";
Song et al. 2021, eq. 12 with $\\eta = 0$). After two of them, $t \\to t' \\to t''$, the
student's target is the $\\tilde x$ whose single DDIM step $t \\to t''$ lands on the same
$z_{t''}$ (Algorithm 2, "teacher $\\hat x$ target"):
$$\\tilde x = \\frac{z_{t''} - (\\sigma_{t''}/\\sigma_t)\\, z_t}
{\\alpha_{t''} - (\\sigma_{t''}/\\sigma_t)\\, \\alpha_t},$$
learnt with $L_\\theta = w(\\lambda_t)\\lVert \\tilde x - \\hat x_\\theta(z_t)\\rVert^2$, the
weight "truncated SNR" $\\max(\\alpha_t^2/\\sigma_t^2, 1)$ or "SNR+1" (their section 4).

The student stays a plain :class:`~aigc_course.train.diffusion.DiffusionModel` (an
$\\epsilon$-predicting network, $\\hat x_\\theta = (z_t - \\sigma_t\\epsilon_\\theta)/\\alpha_t$)
that samples with the course's DDIM (``model.sample(n, steps=N)``) and saves and loads
with :func:`~aigc_course.train.diffusion.save_diffusion`. Its ``train`` dict (saved as
``metadata["train"]``) records the $N$ it was distilled for (``"distilled_steps"``, and
``"sampling_steps"``, the default of ``sample``), the guidance built in (``"guidance"``)
and the run (``"distill"``: the config and the final loss).

Adapted to the course's DDIM, whose $N$ steps are $t_k = k\\lfloor T/N\\rfloor$ (leading
spacing) and start at $t_{N-1} = (N-1)T/N$ rather than at $\\mathrm{SNR} = 0$:

* the student's $t$ is one of its own $N$ sampling steps (Algorithm 2 draws
  $t = i/N$ too) and $t''$ the next; the grids nest when $T$ is divisible by every
  student's $N$, so each round's midpoints $t'$ are steps the teacher was distilled on;
* at the top step the sampler feeds pure noise, not $q(z_t \\mid x)$: there the student
  sees $z = \\epsilon$ and the target follows the teacher's own sampler from the same
  noise (one more teacher step, from the teacher's top step $t + \\lfloor T/2N\\rfloor$);
  Salimans & Ho start at $\\mathrm{SNR} = 0$, where the two coincide;
* the teacher's $\\hat x_\\eta$ is clipped to $[-1, 1]$, as the course's DDIM samples;
* an $\\epsilon$-parameterised student (Salimans & Ho prefer $v$ or $x$ outputs, section 4):
  the network class is the course's, unchanged.

Class-conditional models: round 1 distils the *guided* teacher
$\\tilde\\epsilon = (1 + w)\\epsilon(z, y) - w\\,\\epsilon(z, \\varnothing)$ at one fixed $w$
(``config.guidance``) into the student's conditional branch; later rounds distil that
branch. Sample a student with ``guidance=0`` (it already is guided). Meng et al. 2023
("On distillation of guided diffusion models") distil a $w$-conditioned student instead.

Simplified: a fixed number of optimisation steps per round (Salimans & Ho train each
round for tens of thousands), Adam with the learning rate decaying linearly to 0 within
each round, EMA weights as the round's result.

Measured on the shipped 16x16 conditional DDPM (w = 2; judge FID of 1,000 samples
against the 16x16 train split, seeds 0 / 1 / 2, one thread): the defaults (16 -> 8 -> 4
-> 2, 200 steps of 64 a round, 66-92 CPU-s in all) reach FID 5.6-6.0 at 8 steps,
4.9-5.3 at 4 and 7.1-7.9 at 2, where the teacher's guided DDIM gives 6.4-6.8 / 15-16 /
386-395 and 6.5-6.8 at 50 steps. A student also costs half a guided step (no
unconditional branch): 1,000 samples in 2 steps take 1.0 CPU-s.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn
from tqdm.auto import tqdm

from aigc_course.data.registry import load_images
from aigc_course.diffusion import Guided, NoiseSchedule
from aigc_course.train.diffusion import DiffusionModel
from aigc_course.train.ema import EMA
from aigc_course.utils import seeded

Tensor = torch.Tensor
Weighting = Literal["truncated_snr", "snr_plus_one"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)


@dataclass
class DistillConfig:
    """Progressive distillation, all rounds.

    Attributes:
        start_steps: the teacher's sampling steps; round 1's student takes half.
        end_steps: the last student's steps (``start_steps / end_steps`` a power of 2).
        steps_per_round: optimisation steps of each round (fixed, not a time budget).
        batch_size: minibatch size.
        lr: Adam's initial learning rate (decays linearly to 0 in each round).
        weighting: ``"truncated_snr"`` $\\max(\\mathrm{SNR}, 1)$ or ``"snr_plus_one"``.
        guidance: the fixed guidance scale $w$ distilled into a conditional student.
        ema_decay: EMA decay of the student's weights (the round's result).
        seed: seeds minibatches, $t$ and $\\epsilon$.
        dataset: the training images when none are given (``dataset``'s train split).
        device: ``"cpu"`` or ``"cuda"``.
    """

    start_steps: int = 16
    end_steps: int = 2
    steps_per_round: int = 200
    batch_size: int = 64
    lr: float = 2e-4
    weighting: Weighting = "truncated_snr"
    guidance: float = 2.0
    ema_decay: float = 0.99
    seed: int = 0
    dataset: str = "digits"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; valid: "
                             f"{', '.join(WEIGHTINGS)}")
        ratio = self.start_steps // max(1, self.end_steps)
        if (self.end_steps < 1 or self.start_steps <= self.end_steps
                or self.start_steps % self.end_steps or ratio & (ratio - 1)):
            raise ValueError("need start_steps = end_steps * 2**k with k >= 1 and "
                             f"end_steps >= 1, got {self.start_steps} and {self.end_steps}")
        if self.steps_per_round < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps_per_round and batch_size must be >= 1, lr > 0")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")

    @property
    def student_steps(self) -> list[int]:
        """Each round's student steps: ``start_steps / 2``, ..., ``end_steps``."""
        steps, out = self.start_steps, []
        while steps > self.end_steps:
            steps //= 2
            out.append(steps)
        return out


def _alpha_sigma(alpha_bar_ext: Tensor, t: Tensor, ndim: int) -> tuple[Tensor, Tensor]:
    """$(\\alpha_t, \\sigma_t)$ of steps ``t`` ``(B,)`` shaped ``(B, 1, ..., 1)``; ``t = -1``
    is the data (``alpha_bar_ext`` ends with $\\bar\\alpha = 1$)."""
    ab = alpha_bar_ext[t].reshape(-1, *([1] * (ndim - 1)))                # (B, 1, ...)
    return ab.sqrt(), (1 - ab).sqrt()


def _eps(network: nn.Module, z: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
    return network(z, t) if y is None else network(z, t, y)


def ddim_step(eps_model: nn.Module, z: Tensor, t: Tensor, t_next: Tensor, y: Tensor | None,
              alpha_bar_ext: Tensor) -> Tensor:
    """One deterministic DDIM step per row, $t \\to t_\\text{next}$ (``-1``: the data), with
    $\\hat x$ clipped to $[-1, 1]$: what :class:`~aigc_course.diffusion.DDIM` with
    ``clip_x0=True`` does, for a batch of different steps ``t`` ``(B,)``."""
    alpha, sigma = _alpha_sigma(alpha_bar_ext, t, z.ndim)                # (B, 1, ...)
    alpha_next, sigma_next = _alpha_sigma(alpha_bar_ext, t_next, z.ndim)
    x_hat = ((z - sigma * _eps(eps_model, z, t, y)) / alpha).clamp(-1, 1)
    return alpha_next * x_hat + sigma_next / sigma * (z - alpha * x_hat)  # Alg. 2: DDIM


def distill_loss(student: nn.Module, teacher: nn.Module, x: Tensor, y: Tensor | None,
                 steps: int, schedule: NoiseSchedule, weighting: Weighting = "truncated_snr",
                 generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 2's loss on one batch: the student's one step against the teacher's two.

    Args:
        student: $\\epsilon_\\theta$, the network being trained (``steps`` sampling steps).
        teacher: $\\epsilon_\\eta$, sampled with ``2 * steps`` steps (e.g. a ``Guided``).
        x: ``(B, C, H, W)`` training images in ``[-1, 1]``.
        y: ``(B,)`` labels of a conditional pair, or ``None``.
        steps: the student's DDIM steps $N$ (dividing $T$).
        schedule: the diffusion schedule of both.
        weighting: ``"truncated_snr"`` or ``"snr_plus_one"``.

    Returns:
        The scalar weighted x-space loss, differentiable in the student's parameters.
    """
    T, b, device = schedule.T, x.shape[0], x.device
    stride = T // steps
    alpha_bar_ext = torch.cat([schedule.alpha_bar, schedule.alpha_bar.new_ones(1)]).to(device)
    k = torch.randint(0, steps, (b,), generator=generator).to(device)    # Alg. 2: i ~ Cat[1..N]
    t = k * stride                                                        # (B,) the student's step
    data = torch.full_like(t, -1)
    t_next = torch.where(k > 0, t - stride, data)                         # t'' (the data after t_0)
    t_mid = torch.where(k > 0, (t + t_next) // 2, data)                   # t'
    top = k == steps - 1
    eps = torch.randn(x.shape, generator=generator).to(device)
    alpha, sigma = _alpha_sigma(alpha_bar_ext, t, x.ndim)                # (B, 1, 1, 1)
    z = alpha * x + sigma * eps                                           # Alg. 2: z_t
    z = torch.where(top.reshape(-1, 1, 1, 1), eps, z)                     # the sampler's start
    with torch.no_grad():
        zt = z.clone()                          # the teacher's z_t (top: after its first step)
        if bool(top.any()):
            start = t[top] + stride // 2                                  # the teacher's top step
            zt[top] = ddim_step(teacher, z[top], start, t[top],
                                None if y is None else y[top], alpha_bar_ext)
        z_mid = ddim_step(teacher, zt, t, t_mid, y, alpha_bar_ext)        # Alg. 2: z_t'
        z_end = z_mid.clone()                                             # Alg. 2: z_t''
        two = k > 0                             # from t_0 = 0 one step reaches the data
        if bool(two.any()):
            z_end[two] = ddim_step(teacher, z_mid[two], t_mid[two], t_next[two],
                                   None if y is None else y[two], alpha_bar_ext)
        alpha_end, sigma_end = _alpha_sigma(alpha_bar_ext, t_next, x.ndim)
        ratio = sigma_end / sigma
        x_tilde = (z_end - ratio * z) / (alpha_end - ratio * alpha)      # Alg. 2: x~ target
    x_hat = (z - sigma * _eps(student, z, t, y)) / alpha                 # the student's x
    snr = alpha**2 / sigma**2                                             # exp(lambda_t)
    w = snr.clamp(min=1) if weighting == "truncated_snr" else snr + 1     # section 4
    return (w * (x_tilde - x_hat) ** 2).mean()                            # Alg. 2: L_theta


def _training_set(model: DiffusionModel, images: Tensor | None, labels: Tensor | None,
                  dataset: str) -> tuple[Tensor, Tensor | None]:
    if images is None:
        images, labels = load_images(dataset, "train", image_size=model.config.image_size)
    if model.conditional and labels is None:
        raise ValueError("a conditional model needs labels with its images")
    return images, labels if model.conditional else None


def distill_round(teacher: DiffusionModel, teacher_eps: nn.Module, images: Tensor,
                  labels: Tensor | None, steps: int, config: DistillConfig,
                  generator: torch.Generator, progress: bool = True) -> DiffusionModel:
    """One round: a student of ``steps`` steps from ``teacher`` (``2 * steps`` steps).

    Args:
        teacher: the model the student copies (its network, schedule and configs).
        teacher_eps: the teacher's $\\epsilon$ (``teacher.network`` or a ``Guided`` one).
        images: ``(N, C, H, W)`` in ``[-1, 1]``; labels: ``(N,)`` or ``None``.
        steps: the student's sampling steps.

    Returns:
        The student (EMA weights, eval mode, CPU); its ``train`` has ``distilled_steps``
        and ``sampling_steps`` equal to ``steps`` and ``guidance``, the $w$ built in.
    """
    device = torch.device(config.device)
    schedule = teacher.schedule.to(device)
    teacher_eps = teacher_eps.to(device).eval().requires_grad_(False)
    student = copy.deepcopy(teacher.network).to(device).train().requires_grad_(True)
    ema = EMA(student, config.ema_decay)
    optimiser = torch.optim.Adam(student.parameters(), lr=config.lr)
    decay = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: 1 - i / config.steps_per_round)
    x_all = images.to(device)
    y_all = None if labels is None else labels.to(device)
    losses = []
    for _ in tqdm(range(config.steps_per_round), desc=f"distil {2 * steps} -> {steps}",
                  disable=not progress):
        idx = torch.randint(len(x_all), (config.batch_size,), generator=generator).to(device)
        y = None if y_all is None else y_all[idx]                        # (B,)
        optimiser.zero_grad()
        loss = distill_loss(student, teacher_eps, x_all[idx], y, steps, schedule,
                            config.weighting, generator)
        loss.backward()
        optimiser.step()
        decay.step()
        ema.update(student)
        losses.append(loss.item())
    tail = losses[-max(1, len(losses) // 10):]
    guidance = teacher.train.get("guidance", config.guidance if teacher.conditional else 0.0)
    record = {**teacher.train, "distilled_steps": steps, "sampling_steps": steps,
              "guidance": float(guidance),
              "distill": {**dataclasses.asdict(config),
                          "final_loss": sum(tail) / len(tail)}}
    return DiffusionModel(ema.model.cpu().eval(), teacher.schedule.to("cpu"), teacher.config,
                          record)


def progressive_distill(model: DiffusionModel, images: Tensor | None = None,
                        config: DistillConfig | None = None, *, labels: Tensor | None = None,
                        progress: bool = True) -> list[tuple[int, DiffusionModel]]:
    """Progressive distillation (Algorithm 2): ``start_steps`` halved each round.

    Args:
        model: the teacher (e.g. ``aigc_course.kinds.get("ddpm").load()``); unchanged.
        images: ``(N, C, H, W)`` training images in ``[-1, 1]``; ``None`` loads
            ``config.dataset``'s train split at the model's size (with its labels).
        config: the rounds.
        labels: ``(N,)`` labels of ``images`` (needed for a conditional model).
        progress: a ``tqdm`` bar per round.

    Returns:
        ``[(steps, student), ...]`` one per round, steps decreasing; each student a
        :class:`DiffusionModel` to sample with ``sample(n, steps=steps)`` (conditional:
        ``guidance=0``, the guidance being distilled in).

    Raises:
        ValueError: a student's steps that do not divide $T$, or a conditional model
            without labels.
    """
    config = config or DistillConfig()
    T = model.schedule.T
    for steps in config.student_steps:
        if T % steps:
            valid = [n for n in range(1, config.start_steps) if T % n == 0]
            raise ValueError(f"each student's steps must divide T = {T} so the grids nest; "
                             f"got {steps}; valid: {', '.join(map(str, valid))}")
    images, labels = _training_set(model, images, labels, config.dataset)
    rounds: list[tuple[int, DiffusionModel]] = []
    teacher = model
    with seeded(config.seed) as generator:
        for steps in config.student_steps:
            guided = model.conditional and config.guidance > 0 and teacher is model
            teacher_eps = (Guided(copy.deepcopy(teacher.network), config.guidance) if guided
                           else copy.deepcopy(teacher.network))
            student = distill_round(teacher, teacher_eps, images, labels, steps, config,
                                    generator, progress)
            rounds.append((steps, student))
            teacher = student
    return rounds
