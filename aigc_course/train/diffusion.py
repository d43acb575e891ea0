"""Training a (class-conditional) DDPM on images: the plain loop with EMA, sampling,
evaluation with the judge, checkpoints and the chapter profile.

Algorithm 1 of Ho et al. (2020) with Adam; labels dropped with probability
$p_\\text{uncond}$ so the same network is also unconditional (classifier-free guidance,
Ho & Salimans 2022, Algorithm 1); samples from the EMA weights with DDIM
(:mod:`aigc_course.diffusion.ddim`) and guidance (:mod:`aigc_course.diffusion.guidance`).
The shipped checkpoint is ``aigc_course/checkpoints/ddpm_digits16.pt``
(:func:`retrain_shipped`).

Simplified: a fixed number of steps, no learning-rate schedule except a short warm-up;
the data stay on the device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from aigc_course.data.registry import load_images
from aigc_course.diffusion import DDIM, DDPM, Guided, NoiseSchedule, drop_labels
from aigc_course.diffusion.schedules import ScheduleName
from aigc_course.metrics.judge import judge_report
from aigc_course.models.unet import DenoiserConfig, build_denoiser
from aigc_course.profiles import Profile
from aigc_course.train.checkpoint import read_checkpoint, sample_labels, save_checkpoint
from aigc_course.train.ema import EMA
from aigc_course.utils import Timer, count_params, seed_everything

Tensor = torch.Tensor
KIND = "ddpm"
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "ddpm_digits16.pt"


@dataclass(frozen=True)
class DiffusionProfile(Profile):
    """Chapter 05's knobs (``profiles.resolve(name, cls=DiffusionProfile)``).

    Attributes:
        arch: the main model's network, ``"unet"`` or ``"mlp"``.
        width: U-Net base channels.
        hidden: flat-MLP width.
        fast_steps: training steps of the fast 8x8 conditional MLP model.
        toy_steps: training steps of the 2-D ring model.
        sample_steps: DDIM steps for the main samples.
        guidance: guidance scale $w$ of the main samples.
        step_values: the $S$ of the quality-vs-steps sweep.
        guidance_values: the $w$ of the guidance sweep.
        use_shipped: load ``ddpm_digits16.pt`` (digits 16x16) instead of training.
    """

    arch: str = "unet"
    width: int = 32
    hidden: int = 512
    fast_steps: int = 1500
    toy_steps: int = 2000
    sample_steps: int = 50
    guidance: float = 2.0
    step_values: tuple[int, ...] = (10, 25, 50, 100, 1000)
    guidance_values: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    use_shipped: bool = True
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"train_steps": 20, "fast_steps": 300, "toy_steps": 300, "width": 8,
                  "hidden": 128, "use_shipped": False, "step_values": (5, 10),
                  "guidance_values": (0.0, 2.0), "sample_steps": 10},
        "cpu": {"train_steps": 2000, "batch_size": 64, "width": 16},
        "gpu": {"train_steps": 20000, "width": 64, "use_shipped": False},
    }


@dataclass
class DiffusionTrainConfig:
    """One training run.

    Attributes:
        steps: optimisation steps (fixed: contention never changes results).
        batch_size: minibatch size.
        lr: Adam learning rate (after a linear warm-up of ``warmup`` steps).
        warmup: warm-up steps.
        T: diffusion steps.
        schedule: ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal).
        p_uncond: probability of dropping a label (classifier-free guidance).
        ema_decay: EMA decay of the weights used for sampling.
        seed: seeds initialisation, minibatches, $t$ and $\\epsilon$.
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a ``tqdm`` bar.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 100
    T: int = 1000
    schedule: ScheduleName = "cosine"
    p_uncond: float = 0.1
    ema_decay: float = 0.995
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: linear, cosine")


@dataclass
class DiffusionModel:
    """A trained denoiser (EMA weights), its schedule and configs; samples with DDIM."""

    network: nn.Module
    schedule: NoiseSchedule
    config: DenoiserConfig
    train: dict[str, Any]

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def ddpm(self) -> DDPM:
        return DDPM(self.network, self.schedule)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 50, guidance: float = 0.0, y: Tensor | None = None,
               eta: float = 0.0, seed: int = 0, progress: bool = False,
               return_path: bool = False) -> Tensor:
        """``n`` images ``(n, C, H, W)`` by DDIM with ``steps`` steps (``steps == T`` and
        ``eta == 1``: DDPM's ancestral sampler), guided with scale ``guidance``."""
        c = self.config
        net = Guided(self.network, guidance) if self.conditional else self.network
        generator = torch.Generator().manual_seed(seed)
        sampler = DDIM(net, self.schedule, eta=eta, clip_x0=True)
        shape = (n, c.channels, c.image_size, c.image_size)
        return sampler.sample(shape, steps, y if self.conditional else None, generator,
                              progress, return_path=return_path)


def train_diffusion(images: Tensor, labels: Tensor | None, model_config: DenoiserConfig,
                    config: DiffusionTrainConfig | None = None
                    ) -> tuple[DiffusionModel, dict[str, list[float]]]:
    """Train $\\epsilon_\\theta$ with the simple loss (Algorithm 1) and EMA weights.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: ``(N,)`` classes (needed when ``model_config.num_classes > 0``).
        model_config: the network.
        config: the run.

    Returns:
        The model (EMA weights, eval mode, CPU) and ``{"loss": [...]}`` per step.
    """
    config = config or DiffusionTrainConfig()
    if model_config.num_classes and labels is None:
        raise ValueError("a conditional model needs labels")
    generator = seed_everything(config.seed)
    device = torch.device(config.device)
    network = build_denoiser(model_config).to(device)
    schedule = NoiseSchedule.from_name(config.schedule, config.T)
    ddpm = DDPM(network, schedule)
    ema = EMA(network, config.ema_decay)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda k: min(1.0, (k + 1) / max(1, config.warmup)))
    x_all = images.to(device)
    y_all = labels.to(device) if model_config.num_classes else None
    history: dict[str, list[float]] = {"loss": []}
    network.train()
    for _ in tqdm(range(config.steps), desc="DDPM", disable=not config.progress):
        idx = torch.randint(len(x_all), (config.batch_size,), generator=generator).to(device)
        x0 = x_all[idx]                                                   # (B, C, H, W)
        y = None if y_all is None else drop_labels(y_all[idx], config.p_uncond,
                                                   model_config.num_classes, generator)
        optimiser.zero_grad()
        loss = ddpm.loss(x0, generator, y)                                # Algorithm 1
        loss.backward()
        optimiser.step()
        warmup.step()
        ema.update(network)
        history["loss"].append(loss.item())
    model = DiffusionModel(ema.model.cpu().eval(), schedule, model_config,
                           dataclasses.asdict(config))
    return model, history


@torch.no_grad()
def evaluate(model: DiffusionModel, n: int = 1000, steps: int = 50, guidance: float = 0.0,
             seed: int = 0, batch: int = 500) -> dict[str, float]:
    """Sample ``n`` images (labels cycling 0..9 when conditional) and ask the judge.

    Returns:
        ``judge_report`` (``fid``, ``recognisability``, ``coverage``, ``label_accuracy``)
        plus ``sample_seconds`` (wall time of sampling).
    """
    y = torch.arange(n) % 10 if model.conditional else None
    chunks = []
    with Timer() as timer:
        for k, start in enumerate(range(0, n, batch)):
            yk = None if y is None else y[start:start + batch]
            chunks.append(model.sample(min(batch, n - start), steps, guidance, yk,
                                       seed=seed + k))
    report = judge_report(torch.cat(chunks), y)
    return {**{k: float(v) for k, v in report.items()}, "sample_seconds": timer.seconds}


# --- checkpoints ---------------------------------------------------------------------

def save_diffusion(model: DiffusionModel, path: str | Path,
                   metadata: dict[str, Any] | None = None) -> Path:
    """Save (kind ``"ddpm"``, loads with ``weights_only=True``); the schedule is in config."""
    config = {"model": model.config.to_dict(), "schedule": model.train["schedule"],
              "T": model.train["T"]}
    return save_checkpoint(path, KIND, model.network, config,
                           {**(metadata or {}), "train": model.train})


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "?") -> DiffusionModel:
    """Build the :class:`DiffusionModel` a checkpoint dict describes."""
    try:
        config = checkpoint["config"]
        model_config = DenoiserConfig(**config["model"])
        network = build_denoiser(model_config)
        network.load_state_dict(checkpoint["state_dict"])
        schedule = NoiseSchedule.from_name(config["schedule"], int(config["T"]))
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: config or weights do not fit a ddpm model "
                         f"({str(error)[:300]})") from error
    train = checkpoint.get("metadata", {}).get("train", {})
    return DiffusionModel(network.eval(), schedule, model_config, train)


def load_diffusion(path: str | Path | None = None) -> DiffusionModel:
    """Load a checkpoint (the shipped ``ddpm_digits16.pt`` by default)."""
    path = Path(path) if path is not None else SHIPPED
    return model_from_checkpoint(read_checkpoint(path, KIND), path)


def train_on_dataset(dataset: str = "digits", image_size: int | None = 16,
                     conditional: bool = True, arch: str = "unet", width: int = 32,
                     hidden: int = 512, config: DiffusionTrainConfig | None = None,
                     max_train: int | None = None) -> tuple[DiffusionModel, dict[str, Any]]:
    """Train on a registry dataset's train split.

    Returns:
        The model and ``{"seconds", "params", "dataset", "image_size", "final_loss"}``.
    """
    config = config or DiffusionTrainConfig()
    x, y = load_images(dataset, "train", image_size=image_size, max_items=max_train)
    model_config = DenoiserConfig(arch=arch, image_size=x.shape[-1],  # type: ignore[arg-type]
                                  channels=x.shape[1], width=width, hidden=hidden,
                                  num_classes=10 if conditional else 0)
    with Timer() as timer:
        model, history = train_diffusion(x, y, model_config, config)
    final = sum(history["loss"][-100:]) / len(history["loss"][-100:])
    params = count_params(model.network, trainable_only=False)
    return model, {"seconds": timer.seconds, "params": params,
                   "dataset": dataset, "image_size": int(x.shape[-1]), "final_loss": final}


def retrain_shipped(out: str | Path | None = None, steps: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """Retrain the shipped checkpoint: the cpu profile's conditional U-Net on digits 16x16.

    Same as ``aigc-course train ddpm --dataset digits --image-size 16 --conditional
    --profile cpu --out aigc_course/checkpoints/ddpm_digits16.pt``.
    """
    return cli_train("digits", 16, True, "cpu", seed, steps, out if out is not None else SHIPPED)


# --- the command line's hooks (aigc_course.cli registers the kind "ddpm") ------------

def cli_train(dataset: str | None, image_size: int | None, conditional: bool, profile: str,
              seed: int, steps: int | None, out: str | Path,
              progress: bool = True) -> dict[str, Any]:
    """``aigc-course train ddpm ...``: train on a profile's settings and save to ``out``."""
    from aigc_course.profiles import resolve

    p = resolve(profile, cls=DiffusionProfile)
    config = DiffusionTrainConfig(steps=steps or p.train_steps, batch_size=p.batch_size,
                                  seed=seed, device=p.device, progress=progress)
    model, metrics = train_on_dataset(dataset or p.dataset,
                                      image_size if image_size is not None else p.image_size,
                                      conditional, p.arch, p.width, p.hidden, config,
                                      p.max_train)
    path = save_diffusion(model, out, {**metrics, "profile": p.name})
    return {**metrics, "path": str(path)}


def cli_sample(checkpoint: dict[str, Any], n: int, label: int | None, seed: int,
               steps: int = 50, guidance: float = 0.0) -> tuple[Tensor, Tensor]:
    """``aigc-course sample CKPT [--steps S] [--guidance W] [--label K]``: images and labels."""
    model = model_from_checkpoint(checkpoint)
    y = sample_labels(n, label, model.config.num_classes)
    if not 1 <= steps <= model.schedule.T:
        raise ValueError(f"--steps must be in 1..{model.schedule.T}, got {steps}")
    if model.conditional:
        return model.sample(n, steps, guidance, y, seed=seed), y
    return model.sample(n, steps, seed=seed), y
