"""Training a convolutional VAE: the plain loop, evaluation, checkpoints, the chapter profile.

Minimises $\\frac1B\\sum_b -\\log p_\\theta(x_b \\mid z_b)
+ \\beta\\,\\mathrm{KL}(q_\\phi(z \\mid x_b) \\Vert \\mathcal N(0, I))$
with one reparameterised $z_b$ per image (Kingma & Welling 2014, eq. 10; $\\beta \\ne 1$
is the $\\beta$-VAE of Higgins et al. 2017) with Adam.
:func:`iwae_log_px` estimates $\\log p_\\theta(x)$ with $k$ importance samples (Burda
et al. 2016). Checkpoints go through :mod:`aigc_course.train.checkpoint`; the shipped
one is ``aigc_course/checkpoints/vae_digits16.pt`` (see :func:`retrain_shipped`).

Simplified: no KL warm-up and no learning-rate schedule (a fixed number of steps, the
same on every machine); the data are small enough to keep on the device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from aigc_course import losses
from aigc_course.data.registry import load_images
from aigc_course.losses import Likelihood
from aigc_course.metrics.image import psnr, ssim
from aigc_course.models.vae import ConvVAE, VAEConfig
from aigc_course.profiles import Profile
from aigc_course.train.checkpoint import read_checkpoint, sample_labels, save_checkpoint
from aigc_course.utils import Timer, count_params, seed_everything

Tensor = torch.Tensor
KIND = "vae"
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "vae_digits16.pt"


@dataclass(frozen=True)
class VAEProfile(Profile):
    """Chapter 04's knobs (``profiles.resolve(name, cls=VAEProfile)``).

    Attributes:
        latent_dim: latent dimension of the main model.
        width: first-layer channels of the conv VAE.
        beta_values: the $\\beta$ of the rate--distortion sweep.
        sweep_steps: training steps of each sweep model and of the 2-D latent model.
        iwae_k: the largest number of importance samples.
        iwae_images: test images the IWAE bounds are averaged over.
        use_shipped: load ``vae_digits16.pt`` instead of training the main model
            (when the dataset is digits at 16x16).
        sweep_size: image size of the sweep models and the 2-D latent model (8: fast).
    """

    latent_dim: int = 16
    width: int = 16
    beta_values: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 4.0)
    sweep_steps: int = 1500
    iwae_k: int = 256
    iwae_images: int = 200
    use_shipped: bool = True
    sweep_size: int = 8
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"sweep_steps": 30, "iwae_k": 32, "iwae_images": 50, "use_shipped": False,
                  "beta_values": (0.5, 4.0)},
        "cpu": {"train_steps": 4000, "sweep_steps": 1200},
        "gpu": {"sweep_steps": 5000, "use_shipped": False, "latent_dim": 32, "width": 32,
                "sweep_size": 16},
    }


@dataclass
class VAETrainConfig:
    """One training run.

    Attributes:
        steps: optimisation steps (fixed: contention never changes results).
        batch_size: minibatch size.
        lr: Adam learning rate.
        beta: weight of the KL term (1: the ELBO).
        likelihood: ``"bernoulli"`` or ``"gaussian"`` decoder.
        sigma: the Gaussian decoder's standard deviation.
        seed: seeds initialisation, minibatches and $\\epsilon$.
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a ``tqdm`` bar.
        checkpoint_every: also save to ``checkpoint_path`` every this many steps (0: never).
        checkpoint_path: where to save during training.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 1.0
    likelihood: Likelihood = "bernoulli"
    sigma: float = 0.1
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    checkpoint_every: int = 0
    checkpoint_path: str | None = None

    def __post_init__(self) -> None:
        losses._check_likelihood(self.likelihood)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def train_vae(images: Tensor, labels: Tensor | None = None,
              model_config: VAEConfig | None = None,
              config: VAETrainConfig | None = None) -> tuple[ConvVAE, dict[str, list[float]]]:
    """Train a :class:`ConvVAE` on ``images`` for ``config.steps`` Adam steps.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: ``(N,)`` classes, needed when ``model_config.num_classes > 0``.
        model_config: the architecture (``None``: defaults at the images' size).
        config: the run (``None``: defaults).

    Returns:
        The model (eval mode, on CPU) and its history per step: ``loss`` (the
        $\\beta$-weighted objective), ``reconstruction`` and ``kl`` (nats per image).
    """
    config = config or VAETrainConfig()
    model_config = model_config or VAEConfig(image_size=images.shape[-1],
                                             channels=images.shape[1])
    if model_config.num_classes and labels is None:
        raise ValueError("a conditional VAE needs labels")
    generator = seed_everything(config.seed)
    device = torch.device(config.device)
    model = ConvVAE(model_config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    x_all = images.to(device)
    y_all = labels.to(device) if (labels is not None and model_config.num_classes) else None
    history: dict[str, list[float]] = {"loss": [], "reconstruction": [], "kl": []}
    model.train()
    for step in tqdm(range(config.steps), desc="VAE", disable=not config.progress):
        idx = torch.randint(len(x_all), (config.batch_size,), generator=generator).to(device)
        x = x_all[idx]                                                    # (B, C, H, W)
        y = None if y_all is None else y_all[idx]
        optimiser.zero_grad()
        logits, mu, logvar = model(x, y, generator)
        terms = losses.elbo_terms(x, logits, mu, logvar, config.likelihood, config.sigma)
        loss = losses.beta_vae_loss(terms, config.beta)
        loss.backward()
        optimiser.step()
        history["loss"].append(loss.item())
        history["reconstruction"].append(terms["reconstruction"].mean().item())
        history["kl"].append(terms["kl"].mean().item())
        if config.checkpoint_every and config.checkpoint_path and \
                (step + 1) % config.checkpoint_every == 0:
            save_vae(model, config.checkpoint_path, {"step": step + 1, "train": _plain(config)})
            model.to(device).train()
    return model.cpu().eval(), history


def _plain(config: VAETrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


@torch.no_grad()
def evaluate(model: ConvVAE, images: Tensor, labels: Tensor | None = None,
             likelihood: Likelihood = "bernoulli", sigma: float = 0.1,
             seed: int = 0) -> dict[str, float]:
    """Reconstruction quality and the ELBO terms on held-out images.

    Returns:
        ``psnr`` and ``ssim`` of the mean reconstructions (dB; data range 2), and the
        means of ``reconstruction`` and ``kl`` (nats per image, one $z$ sample each).
    """
    model.eval()
    y = labels if model.conditional else None
    x_hat = model.reconstruct(images, y)
    generator = torch.Generator().manual_seed(seed)
    logits, mu, logvar = model(images, y, generator)
    terms = losses.elbo_terms(images, logits, mu, logvar, likelihood, sigma)
    return {"psnr": float(psnr(x_hat, images).mean()), "ssim": float(ssim(x_hat, images).mean()),
            "reconstruction": float(terms["reconstruction"].mean()),
            "kl": float(terms["kl"].mean())}


@torch.no_grad()
def iwae_log_px(model: ConvVAE, x: Tensor, k: int, y: Tensor | None = None,
                likelihood: Likelihood = "bernoulli", sigma: float = 0.1,
                generator: torch.Generator | None = None) -> Tensor:
    """The IWAE estimate $\\mathcal L_k(x)$ of $\\log p_\\theta(x)$, nats per image ``(B,)``.

    $k = 1$ is a one-sample ELBO. Draws ``k`` latents per image from $q(z \\mid x)$ and
    calls :func:`aigc_course.losses.iwae_bound`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mu, logvar = model.encode(x, y)                                       # (B, D)
    log_px, log_pz, log_qz = [], [], []
    for _ in range(k):
        z = model.reparameterise(mu, logvar, generator)                   # (B, D)
        log_px.append(losses.log_likelihood(x, model.decode(z, y), likelihood, sigma))
        log_pz.append(losses.gaussian_log_density(z))
        log_qz.append(losses.gaussian_log_density(z, mu, logvar))
    return losses.iwae_bound(torch.stack(log_px), torch.stack(log_pz), torch.stack(log_qz))


@torch.no_grad()
def active_units(model: ConvVAE, images: Tensor, labels: Tensor | None = None,
                 threshold: float = 0.01) -> Tensor:
    """Which latent dimensions the encoder uses (Burda et al. 2016, sec. 5.2).

    A unit $u$ is active when $\\operatorname{Cov}_x(\\mathbb E_{q(u \\mid x)}[u]) > 0.01$: its
    posterior mean moves with the input. Posterior collapse is every unit inactive.

    Returns:
        ``(latent_dim,)`` variances of $\\mu_u(x)$ over ``images``; compare to ``threshold``.
    """
    mu, _ = model.encode(images, labels if model.conditional else None)
    return mu.var(dim=0)


def beta_sweep(images: Tensor, test_images: Tensor, betas: tuple[float, ...], steps: int,
               latent_dim: int = 16, width: int = 16, seed: int = 0, n_samples: int = 16,
               device: str = "cpu") -> list[dict[str, Any]]:
    """Train one VAE per $\\beta$ and measure rate (KL) and distortion (reconstruction).

    Returns:
        One dict per $\\beta$: ``beta``, ``kl`` and ``reconstruction`` (test nats per
        image), ``psnr``, ``active`` (number of active units), ``samples``
        ``(n_samples, C, H, W)`` from the prior.
    """
    results = []
    config = VAEConfig(image_size=images.shape[-1], channels=images.shape[1],
                       latent_dim=latent_dim, width=width)
    for beta in betas:
        model, _ = train_vae(images, None, config, VAETrainConfig(
            steps=steps, beta=beta, seed=seed, device=device, progress=False))
        scores = evaluate(model, test_images)
        generator = torch.Generator().manual_seed(seed)
        results.append({"beta": beta, "kl": scores["kl"],
                        "reconstruction": scores["reconstruction"], "psnr": scores["psnr"],
                        "active": int((active_units(model, test_images) > 0.01).sum()),
                        "samples": model.sample(n_samples, generator=generator)})
    return results


# --- checkpoints ---------------------------------------------------------------------

def save_vae(model: ConvVAE, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save a VAE checkpoint (kind ``"vae"``) that loads with ``weights_only=True``."""
    return save_checkpoint(path, KIND, model, model.config.to_dict(), metadata)


def load_vae(path: str | Path | None = None) -> ConvVAE:
    """Load a VAE checkpoint (the shipped ``vae_digits16.pt`` by default), eval mode, CPU.

    Raises:
        FileNotFoundError: no file. ValueError: corrupt, foreign, another kind, or
        weights that do not fit the config.
    """
    path = Path(path) if path is not None else SHIPPED
    checkpoint = read_checkpoint(path, KIND)
    return model_from_checkpoint(checkpoint, path)


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "?") -> ConvVAE:
    """Build the :class:`ConvVAE` a checkpoint dict describes."""
    try:
        model = ConvVAE(VAEConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: config or weights do not fit a ConvVAE "
                         f"({str(error)[:300]})") from error
    return model.eval()


def train_on_dataset(dataset: str = "digits", image_size: int | None = 16,
                     conditional: bool = False, latent_dim: int = 16, width: int = 16,
                     config: VAETrainConfig | None = None,
                     max_train: int | None = None) -> tuple[ConvVAE, dict[str, Any]]:
    """Train on a registry dataset's train split; metrics on its test split.

    Returns:
        The model and ``{"test": evaluate(...), "seconds", "params", "dataset",
        "image_size", "final_loss"}``.
    """
    config = config or VAETrainConfig()
    x, y = load_images(dataset, "train", image_size=image_size, max_items=max_train)
    model_config = VAEConfig(image_size=x.shape[-1], channels=x.shape[1], latent_dim=latent_dim,
                             width=width, num_classes=10 if conditional else 0)
    with Timer() as timer:
        model, history = train_vae(x, y, model_config, config)
    x_test, y_test = load_images(dataset, "test", image_size=image_size)
    metrics = {"test": evaluate(model, x_test, y_test, config.likelihood, config.sigma),
               "seconds": timer.seconds, "params": count_params(model), "dataset": dataset,
               "image_size": int(x.shape[-1]), "final_loss": history["loss"][-1],
               "train": _plain(config)}
    return model, metrics


def retrain_shipped(out: str | Path | None = None, steps: int = 4000,
                    seed: int = 0) -> dict[str, Any]:
    """Retrain the shipped checkpoint: the cpu profile's model on digits 16x16.

    Same as ``aigc-course train vae --dataset digits --image-size 16 --profile cpu
    --out aigc_course/checkpoints/vae_digits16.pt``.
    """
    model, metrics = train_on_dataset("digits", 16, config=VAETrainConfig(steps=steps, seed=seed))
    path = save_vae(model, out if out is not None else SHIPPED, metrics)
    return {**metrics, "path": str(path)}


# --- the command line's hooks (aigc_course.cli registers the kind "vae") -------------

def cli_train(dataset: str | None, image_size: int | None, conditional: bool, profile: str,
              seed: int, steps: int | None, out: str | Path,
              progress: bool = True) -> dict[str, Any]:
    """``aigc-course train vae ...``: train on a profile's settings and save to ``out``.

    ``None`` for ``dataset``, ``image_size`` or ``steps`` takes the profile's value.
    """
    from aigc_course.profiles import resolve

    p = resolve(profile, cls=VAEProfile)
    config = VAETrainConfig(steps=steps or p.train_steps, batch_size=p.batch_size, seed=seed,
                            device=p.device, progress=progress)
    model, metrics = train_on_dataset(dataset or p.dataset,
                                      image_size if image_size is not None else p.image_size,
                                      conditional, p.latent_dim, p.width, config, p.max_train)
    path = save_vae(model, out, {**metrics, "profile": p.name})
    return {**metrics, "path": str(path)}


def cli_sample(checkpoint: dict[str, Any], n: int, label: int | None,
               seed: int) -> tuple[Tensor, Tensor]:
    """``aigc-course sample``: ``n`` prior samples ``(n, C, H, W)`` and their labels.

    Labels are the requested classes of a conditional model (``label``, or cycling
    through the classes), ``-1`` for an unconditional one.
    """
    model = model_from_checkpoint(checkpoint)
    generator = torch.Generator().manual_seed(seed)
    y = sample_labels(n, label, model.config.num_classes)
    return model.sample(n, y if model.conditional else None, generator), y


def cli_reconstruct(checkpoint: dict[str, Any], dataset: str, split: str,
                    n: int) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """``aigc-course reconstruct``: originals, reconstructions, labels and PSNR/SSIM."""
    model = model_from_checkpoint(checkpoint)
    x, y = load_images(dataset, split, image_size=model.config.image_size, max_items=n)  # type: ignore[arg-type]
    x_hat = model.reconstruct(x, y if model.conditional else None)
    return x, x_hat, y, {"psnr": float(psnr(x_hat, x).mean()),
                         "ssim": float(ssim(x_hat, x).mean()), "n": len(x)}
