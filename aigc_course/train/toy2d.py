"""Plain training loops for the three families on 2-D points: GAN, VAE, diffusion.

Chapter 02 trains one tiny model of each family on the same toy data, in seconds, as a
preview of chapters 03--05. Each loop is a fixed number of steps of
``zero_grad -> forward -> loss -> backward -> step`` on minibatches drawn with
replacement, and returns the model and its loss history:

* :func:`train_gan` -- the non-saturating GAN (Goodfellow et al. 2014, section 3):
  (1) update $D$ on real and detached fake points, (2) update $G$ to make $D$ call its
  points real.
* :func:`train_vae` -- maximise the ELBO (Kingma & Welling 2014, eq. 3) with a Gaussian
  decoder of fixed standard deviation, the KL term in closed form
  (:func:`aigc_course.divergences.kl_gaussian_diag`).
* :func:`train_diffusion` -- DDPM's simple loss (Ho et al. 2020, Algorithm 1) with an
  MLP noise predictor.

:class:`FoundationsProfile` holds chapter 02's profile knobs, and :func:`preview` trains,
samples and times one family, as the chapter's table does.

Simplified: Adam with a cosine learning-rate decay, no EMA of weights, no learning-rate
warm-up; the step counts are fixed (not a time budget), so results do not depend on how
busy the machine is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from aigc_course.diffusion import DDPM, NoiseSchedule
from aigc_course.diffusion.schedules import ScheduleName
from aigc_course.divergences import LOG_2PI, kl_gaussian_diag
from aigc_course.models.mlp import MLPGAN, MLPVAE, MLPConfig, MLPNoisePredictor
from aigc_course.utils import Timer, count_params, num_threads

Tensor = torch.Tensor
History = dict[str, list[float]]
Family = Literal["gan", "vae", "diffusion"]
FAMILIES: tuple[str, ...] = get_args(Family)
M = TypeVar("M", bound=nn.Module)




@dataclass(frozen=True)
class ToyTrainConfig:
    """One tiny training run.

    Attributes:
        steps: optimisation steps.
        batch_size: points per minibatch.
        lr: Adam's learning rate.
        betas: Adam's $(\\beta_1, \\beta_2)$ ($\\beta_1 = 0.5$ is the usual GAN choice).
        cosine_decay: decay the learning rate to 0 along a half cosine (Loshchilov &
            Hutter 2017), so the last steps do not jitter the weights.
        seed: seeds the weights, the minibatches and the noise.
        mlp: the networks' sizes.
        decoder_std: VAE only, the decoder's $\\sigma_x$.
        T, schedule: diffusion only, the number of steps and the noise schedule
            (:meth:`~aigc_course.diffusion.NoiseSchedule.from_name`).
        threads: torch CPU threads while training (``None``: leave torch's setting).
            One is fastest for networks this small, and on a busy machine two threads
            spinning on tiny operations can be ten times slower than one.
        progress: show a ``tqdm`` progress bar.
    """

    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.999)
    cosine_decay: bool = True
    seed: int = 0
    mlp: MLPConfig = field(default_factory=MLPConfig)
    decoder_std: float = 0.1
    T: int = 100
    schedule: ScheduleName = "cosine"
    threads: int | None = 1
    progress: bool = True


def _batches(points: Tensor, config: ToyTrainConfig, generator: torch.Generator,
             desc: str) -> Iterator[Tensor]:
    """``config.steps`` minibatches ``(batch_size, D)`` drawn with replacement, with torch
    limited to ``config.threads`` threads while they are consumed."""
    if points.ndim != 2:
        raise ValueError(f"points must be (N, D), got {tuple(points.shape)}")
    with num_threads(config.threads):
        for _ in tqdm(range(config.steps), desc=desc, disable=not config.progress, leave=False):
            yield points[torch.randint(len(points), (config.batch_size,), generator=generator)]


def _adam(params: Iterable[nn.Parameter], config: ToyTrainConfig
          ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam and its learning-rate schedule (cosine to 0, or constant)."""
    optimiser = torch.optim.Adam(params, lr=config.lr, betas=config.betas)
    if config.cosine_decay:
        return optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    return optimiser, torch.optim.lr_scheduler.ConstantLR(optimiser, factor=1.0)


def _seeded(config: ToyTrainConfig, build: Callable[[], M]) -> M:
    """Build a model with weights seeded by ``config.seed`` (the global RNG is left alone)."""
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return build()


def train_gan(points: Tensor, config: ToyTrainConfig | None = None) -> tuple[MLPGAN, History]:
    """Train an MLP GAN with the non-saturating loss.

    $D$ maximises $\\log D(x) + \\log(1 - D(G(z)))$; $G$ maximises $\\log D(G(z))$
    (Goodfellow et al. 2014, section 3, the non-saturating variant).

    Args:
        points: ``(N, D)`` training points.
        config: the run (default: 3,000 steps, $\\beta_1 = 0.5$ for both optimisers).

    Returns:
        The trained :class:`MLPGAN` and ``{"d_loss": [...], "g_loss": [...]}`` per step.
    """
    config = config or ToyTrainConfig(betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(config.seed)
    gan = _seeded(config, lambda: MLPGAN(config.mlp))
    opt_d, sched_d = _adam(gan.discriminator.parameters(), config)
    opt_g, sched_g = _adam(gan.generator.parameters(), config)
    history: History = {"d_loss": [], "g_loss": []}
    for real in _batches(points, config, gen, "GAN"):
        b = real.shape[0]
        ones, zeros = torch.ones(b), torch.zeros(b)
        # (1) update D: real -> 1, fake -> 0; detach so D's loss does not reach G
        opt_d.zero_grad()
        fake = gan.generator(gan.latent(b, gen))                            # (B, D)
        d_loss = (F.binary_cross_entropy_with_logits(gan.discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(gan.discriminator(fake.detach()), zeros))
        d_loss.backward()
        opt_d.step()
        # (2) update G: make D call the fakes real (non-saturating loss)
        opt_g.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(gan.discriminator(fake), ones)
        g_loss.backward()
        opt_g.step()
        sched_d.step()
        sched_g.step()
        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
    return gan.eval(), history


def negative_elbo(model: MLPVAE, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """$-\\mathrm{ELBO}$ per point in nats, averaged over the batch (Kingma & Welling 2014, eq. 3).

    $$-\\mathrm{ELBO}(x) = \\frac{\\lVert x - \\hat x\\rVert^2}{2\\sigma_x^2}
    + \\frac D2 \\log(2\\pi\\sigma_x^2) + \\mathrm{KL}(q_\\phi(z\\mid x) \\Vert \\mathcal N(0, I))$$
    with one reparameterised $z$ per point; an upper bound on $-\\log p_\\theta(x)$.

    Args:
        model: the VAE.
        x: ``(B, D)`` points.

    Returns:
        A scalar tensor.
    """
    x_hat, mu, logvar = model(x, generator)
    var_x = model.decoder_std**2
    log_norm = 0.5 * x.shape[1] * (LOG_2PI + math.log(var_x))            # D/2 log(2 pi s_x^2)
    reconstruction = (x - x_hat).pow(2).sum(1) / (2 * var_x) + log_norm    # (B,)
    return (reconstruction + kl_gaussian_diag(mu, logvar)).mean()          # (B,) -> scalar


def train_vae(points: Tensor, config: ToyTrainConfig | None = None) -> tuple[MLPVAE, History]:
    """Train an MLP VAE by minimising :func:`negative_elbo`.

    Args:
        points: ``(N, D)`` training points.
        config: the run.

    Returns:
        The trained :class:`MLPVAE` and ``{"loss": [...]}`` ($-$ELBO per step, nats).
    """
    config = config or ToyTrainConfig()
    gen = torch.Generator().manual_seed(config.seed)
    vae = _seeded(config, lambda: MLPVAE(config.mlp, config.decoder_std))
    optimiser, scheduler = _adam(vae.parameters(), config)
    history: History = {"loss": []}
    for x in _batches(points, config, gen, "VAE"):
        optimiser.zero_grad()
        loss = negative_elbo(vae, x, gen)
        loss.backward()
        optimiser.step()
        scheduler.step()
        history["loss"].append(loss.item())
    return vae.eval(), history


def train_diffusion(points: Tensor, config: ToyTrainConfig | None = None
                    ) -> tuple[DDPM, History]:
    """Train a DDPM with an MLP noise predictor (Ho et al. 2020, Algorithm 1).

    Args:
        points: ``(N, D)`` training points.
        config: the run (``T`` and ``schedule`` choose the noise schedule).

    Returns:
        The :class:`~aigc_course.diffusion.DDPM` around the trained network, and
        ``{"loss": [...]}`` per step.
    """
    config = config or ToyTrainConfig()
    gen = torch.Generator().manual_seed(config.seed)
    eps_model = _seeded(config, lambda: MLPNoisePredictor(config.mlp))
    ddpm = DDPM(eps_model, NoiseSchedule.from_name(config.schedule, config.T))
    optimiser, scheduler = _adam(eps_model.parameters(), config)
    history: History = {"loss": []}
    for x0 in _batches(points, config, gen, "diffusion"):
        optimiser.zero_grad()
        loss = ddpm.loss(x0, gen)                                           # eq. 14
        loss.backward()
        optimiser.step()
        scheduler.step()
        history["loss"].append(loss.item())
    eps_model.eval()
    return ddpm, history


@dataclass
class PreviewResult:
    """One family trained and sampled by :func:`preview`."""

    family: Family
    model: Any
    history: History
    samples: Tensor
    train_seconds: float
    sample_seconds: float
    params: int


def preview(family: Family, points: Tensor, steps: int, n_samples: int, seed: int = 0,
            batch_size: int = 256, progress: bool = True) -> PreviewResult:
    """Train one tiny model of ``family`` on ``points``, draw ``n_samples``, time both.

    The settings per family are the defaults of :class:`ToyTrainConfig` with GAN-style
    Adam ($\\beta_1 = 0.5$) for the GAN.

    Args:
        family: ``"gan"``, ``"vae"`` or ``"diffusion"``.
        points: ``(N, 2)`` training points.
        steps: training steps.
        n_samples: generated points to return.
        seed: seeds the weights, minibatches, noise and samples.
        batch_size: minibatch size.
        progress: show progress bars.

    Returns:
        A :class:`PreviewResult` (samples ``(n_samples, 2)``, wall times in seconds).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    betas = (0.5, 0.999) if family == "gan" else (0.9, 0.999)
    config = ToyTrainConfig(steps=steps, batch_size=batch_size, betas=betas, seed=seed,
                            progress=progress)
    model: MLPGAN | MLPVAE | DDPM
    with Timer() as train_timer:
        if family == "gan":
            model, history = train_gan(points, config)
        elif family == "vae":
            model, history = train_vae(points, config)
        else:
            model, history = train_diffusion(points, config)
    gen = torch.Generator().manual_seed(seed + 1)
    with num_threads(config.threads), Timer() as sample_timer:
        if isinstance(model, DDPM):                                     # family "diffusion"
            samples = model.sample((n_samples, points.shape[1]), gen)
            params = count_params(model.eps_model)
        else:
            samples = model.sample(n_samples, gen)
            params = count_params(model)
    return PreviewResult(family, model, history, samples, train_timer.seconds,
                         sample_timer.seconds, params)
