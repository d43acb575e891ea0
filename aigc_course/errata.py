"""Errata: GAN code that circulates in tutorials, run wrong and run fixed.

Each function below runs a mistake that appears in tutorial code and articles, then its
fix, and returns the measured evidence as a small dataclass; ``book/errata.md`` quotes the
numbers. The mistakes:

* (a) :func:`conv2d_generator` -- a "generator" of ``Conv2d`` layers applied to a
  ``(B, 100, 1, 1)`` noise tensor: convolutions only shrink or keep the spatial size, so
  the shapes collapse; a generator must upsample (Radford et al. 2016, DCGAN).
* (b) :func:`generator_fed_real_images` -- a generator fed real images instead of noise:
  copying its input fools any discriminator, and it cannot sample without data.
* (c) :func:`fakes_not_detached` -- the discriminator's update back-propagates into the
  generator because the fakes were not detached.
* (d) :func:`summed_losses` -- the two players' losses summed into one objective, minimised
  by one optimiser: no longer a game (Goodfellow et al. 2014, eq. 1 is a min-max).
* (e) :func:`affine_discriminator` -- a "discriminator" that is an affine map without a
  sigmoid: not a probability, and a linear critic can only compare means.
* plus :func:`checkerboard` -- transposed-convolution upsampling leaves a period-2
  pattern that nearest-neighbour resize followed by a convolution does not
  (Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard artifacts").

Simplified: every demonstration is tiny (1-D or 2-D points, 8x8 images, a few hundred
steps at most) so that each runs in well under a second on one CPU thread; the evidence
is structural (shapes, exact zeros, gradients that exist or not) or a large gap, not a
fine quality measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aigc_course.models.gan import upsample_block
from aigc_course.utils import seed_everything

Tensor = torch.Tensor
LOG_4 = math.log(4.0)


def _error_message(function) -> str | None:
    """Run ``function()``; return the first line of the error it raises, or None."""
    try:
        function()
    except (RuntimeError, ValueError) as error:
        return str(error).strip().splitlines()[0]
    return None


# --- (a) Conv2d layers on a 1x1 noise tensor ---------------------------------------------

@dataclass(frozen=True)
class ShapeTrace:
    """Shapes after each layer of two wrong generators and of the fixed one.

    ``wrong_error`` is what torch raises for the DCGAN-style $4\\times4$ ``Conv2d`` stack;
    ``same_padding_shapes`` is a ``Conv2d`` stack that runs but never leaves $1\\times1$;
    ``fixed_shapes`` ends at ``(B, 1, 16, 16)``.
    """

    wrong_shapes: list[tuple[str, tuple[int, ...]]]
    wrong_error: str | None
    same_padding_shapes: list[tuple[str, tuple[int, ...]]]
    fixed_shapes: list[tuple[str, tuple[int, ...]]]

    @property
    def fixed_output_shape(self) -> tuple[int, ...]:
        return self.fixed_shapes[-1][1]


def _trace(layers: nn.Sequential, z: Tensor) -> tuple[list[tuple[str, tuple[int, ...]]],
                                                       str | None]:
    shapes = [("input", tuple(z.shape))]
    h = z
    for index, layer in enumerate(layers):
        try:
            h = layer(h)
        except RuntimeError as error:
            return shapes, f"layer {index} ({layer}): " + str(error).strip().splitlines()[0]
        shapes.append((f"{index}: {type(layer).__name__}", tuple(h.shape)))
    return shapes, None


def conv2d_generator(batch_size: int = 4, latent_dim: int = 100, seed: int = 0) -> ShapeTrace:
    """Erratum (a): ``Conv2d`` layers on ``(B, 100, 1, 1)`` noise, against upsampling blocks.

    Wrong: ``Conv2d(100, 256, 4, 1, 0)`` then stride-2 ``Conv2d`` layers -- a
    *discriminator*'s layers in a generator's place. A $4\\times4$ kernel does not fit a
    $1\\times1$ input, so torch raises; with ``padding`` chosen to keep the size it runs but
    stays $1\\times1$ (output side $= \\lfloor (H + 2p - k) / s \\rfloor + 1$, at most $H$
    whenever $2p \\le k - 1$).
    Fix: four blocks of :func:`aigc_course.models.gan.upsample_block` double the side,
    $1 \\to 2 \\to 4 \\to 8 \\to 16$.

    Returns:
        :class:`ShapeTrace`.
    """
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    z = torch.randn(batch_size, latent_dim, 1, 1)                       # (B, 100, 1, 1)
    wrong = nn.Sequential(nn.Conv2d(latent_dim, 256, 4, 1, 0), nn.ReLU(),
                          nn.Conv2d(256, 128, 4, 2, 1), nn.ReLU(),
                          nn.Conv2d(128, 1, 4, 2, 1), nn.Tanh())
    same_padding = nn.Sequential(nn.Conv2d(latent_dim, 64, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(64, 32, 3, 1, 1), nn.ReLU(),
                                 nn.Conv2d(32, 1, 3, 1, 1), nn.Tanh())
    fixed = nn.Sequential(upsample_block(latent_dim, 64, "transposed"), nn.ReLU(),
                          upsample_block(64, 32, "transposed"), nn.ReLU(),
                          upsample_block(32, 16, "resize"), nn.ReLU(),
                          upsample_block(16, 1, "resize"), nn.Tanh())
    with torch.no_grad():
        wrong_shapes, wrong_error = _trace(wrong, z)
        same_padding_shapes, _ = _trace(same_padding, z)
        fixed_shapes, _ = _trace(fixed, z)
    return ShapeTrace(wrong_shapes, wrong_error, same_padding_shapes, fixed_shapes)


# --- (b) a generator fed real images ----------------------------------------------------

def _toy_images(n: int, generator: torch.Generator) -> Tensor:
    """``n`` blurry blobs at random places, ``(n, 1, 8, 8)`` in $[-1, 1]$: stand-in 'real' data."""
    axis = torch.arange(8, dtype=torch.float32)
    centres = 1.5 + 5 * torch.rand(n, 2, generator=generator)            # (n, 2)
    rows = (axis[None, :] - centres[:, :1]) ** 2                          # (n, 8)
    cols = (axis[None, :] - centres[:, 1:]) ** 2                          # (n, 8)
    blobs = torch.exp(-(rows[:, :, None] + cols[:, None, :]) / 3.0)       # (n, 8, 8)
    return (2 * blobs - 1).unsqueeze(1)                                   # (n, 1, 8, 8)


def _nearest_distance(samples: Tensor, data: Tensor) -> Tensor:
    """Euclidean distance from each sample to its nearest training image, ``(n,)``."""
    distances = torch.cdist(samples.flatten(1), data.flatten(1),
                            compute_mode="donot_use_mm_for_euclid_dist")  # (n, n_data)
    return distances.min(1).values


def _train_discriminator(real: Tensor, fake: Tensor, steps: int, seed: int) -> tuple[float, float]:
    """Train a small MLP discriminator on real vs fake (BCE with logits).

    Returns the final $-\\mathbb E\\log D(x) - \\mathbb E\\log(1 - D(\\tilde x))$ (twice the mean
    BCE; $\\log 4$ when $D = 1/2$) and the accuracy (a tie $D = 1/2$ counts as half right).
    """
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(real[0].numel(), 32), nn.LeakyReLU(0.2),
                                  nn.Linear(32, 1))
    optimiser = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    inputs = torch.cat([real, fake])
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    for _ in range(steps):
        optimiser.zero_grad()
        logits = discriminator(inputs).squeeze(1)                         # (2n,)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits = discriminator(inputs).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        correct = ((logits > 0).float() == labels).float()
        correct = torch.where(logits == 0, torch.full_like(correct, 0.5), correct)
    return 2 * loss.item(), correct.mean().item()


@dataclass(frozen=True)
class RealInputResult:
    """What a generator that maps real images to images achieves.

    ``d_loss_copy``/``d_accuracy_copy``: a discriminator trained against the copying
    generator ($G$ = identity, which is optimal for the wrong objective) ends at
    $\\log 4$ and 1/2. ``d_loss_noise``/``d_accuracy_noise``: the same discriminator against an
    untrained noise generator. ``nn_distance_*``: mean distance of samples to their nearest
    training image (``typical_nn_distance``: between distinct training images).
    ``latent_input_error``: what the wrong generator does when given a latent vector.
    """

    n_training_images: int
    d_loss_copy: float
    d_accuracy_copy: float
    d_loss_noise: float
    d_accuracy_noise: float
    nn_distance_copy: float
    nn_distance_fixed: float
    typical_nn_distance: float
    latent_input_error: str | None
    fixed_samples_drawn: int


def generator_fed_real_images(n: int = 128, latent_dim: int = 8, steps: int = 150,
                              seed: int = 0) -> RealInputResult:
    """Erratum (b): ``fake = generator(real_images)`` instead of ``generator(z)``.

    A map from data to data can reproduce $p_\\text{data}$ exactly by copying: with
    $G(x) = x$, $p_g = p_\\text{data}$ and the best discriminator is $D^* = 1/2$, so the wrong
    game is won without learning anything (zero novelty: every "sample" is a training
    image) and the model has nothing to sample from once the data are gone. Fix: $G$ maps
    $z \\sim \\mathcal N(0, I)$ to images and draws as many samples as asked.

    Returns:
        :class:`RealInputResult`.
    """
    generator_rng = torch.Generator().manual_seed(seed)
    real = _toy_images(n, generator_rng)                                  # (n, 1, 8, 8)
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    wrong_generator = nn.Identity()            # the optimum of the wrong game: copy the input
    fake_copy = wrong_generator(real)                                     # (n, 1, 8, 8)
    noise_generator = nn.Sequential(nn.Linear(latent_dim, 64), nn.Tanh(),
                                    nn.Unflatten(1, (1, 8, 8)))
    with torch.no_grad():
        fake_noise = noise_generator(torch.randn(n, latent_dim))         # (n, 1, 8, 8)
    d_loss_copy, d_accuracy_copy = _train_discriminator(real, fake_copy, steps, seed)
    d_loss_noise, d_accuracy_noise = _train_discriminator(real, fake_noise, steps, seed)

    # the circulating code's generator: image in, image out (an autoencoder)
    image_to_image = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Tanh(),
                                   nn.Unflatten(1, (1, 8, 8)))
    latent_input_error = _error_message(lambda: image_to_image(torch.randn(n, latent_dim)))

    pairwise = torch.cdist(real.flatten(1), real.flatten(1))              # (n, n)
    pairwise.fill_diagonal_(float("inf"))
    drawn = 4 * n                                  # no data needed, so draw more than n
    with torch.no_grad():
        fixed_samples = noise_generator(torch.randn(drawn, latent_dim))  # (4n, 1, 8, 8)
    return RealInputResult(
        n_training_images=n,
        d_loss_copy=d_loss_copy, d_accuracy_copy=d_accuracy_copy,
        d_loss_noise=d_loss_noise, d_accuracy_noise=d_accuracy_noise,
        nn_distance_copy=_nearest_distance(fake_copy, real).mean().item(),
        nn_distance_fixed=_nearest_distance(fixed_samples, real).mean().item(),
        typical_nn_distance=pairwise.min(1).values.mean().item(),
        latent_input_error=latent_input_error,
        fixed_samples_drawn=len(fixed_samples))


# --- (c) fakes not detached in the discriminator's step --------------------------------

@dataclass(frozen=True)
class DetachResult:
    """Gradients that leak into $G$ during $D$'s update.

    ``leaked_grad_norm``: $\\Vert\\nabla_\\theta\\Vert$ on $G$'s parameters after $D$'s backward
    without ``detach`` (should be absent); ``fixed_grad_is_none``: with ``detach`` they are
    ``None``. ``second_backward_error``: reusing the non-detached fakes for $G$'s step
    raises. ``accumulated_relative_error``: $G$'s gradient when the leak is not cleared
    (``zero_grad`` forgotten), relative to the clean one.
    """

    leaked_grad_norm: float
    fixed_grad_is_none: bool
    second_backward_error: str | None
    accumulated_relative_error: float


def _players(seed: int) -> tuple[nn.Module, nn.Module]:
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return generator, discriminator


def _grad_vector(module: nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                      for p in module.parameters()])


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def fakes_not_detached(batch_size: int = 64, seed: int = 0) -> DetachResult:
    """Erratum (c): ``d_loss = bce(D(real), 1) + bce(D(G(z)), 0)`` without ``.detach()``.

    $D$'s backward then also runs through $G$: wasted work, gradients on $G$'s parameters
    that belong to the opposite objective, and a freed graph when $G$'s step reuses the
    same fakes. Fix: ``D(fake.detach())`` in step (1), a fresh ``D(fake)`` in step (2).

    Returns:
        :class:`DetachResult`.
    """
    generator, discriminator = _players(seed)
    data_rng = torch.Generator().manual_seed(seed)
    real = torch.randn(batch_size, 2, generator=data_rng) + 2.0           # (B, 2)
    z = torch.randn(batch_size, 4, generator=data_rng)                    # (B, 4)

    # wrong: (1) update D on fakes that still carry G's graph
    fake = generator(z)
    d_loss = _bce(discriminator(real).squeeze(1), 1.0) + _bce(discriminator(fake).squeeze(1), 0.0)
    d_loss.backward()
    leak = _grad_vector(generator).clone()
    # (2) update G with the same fakes: the graph through G was freed by (1)'s backward
    second_backward_error = _error_message(
        lambda: _bce(discriminator(fake).squeeze(1), 1.0).backward())

    # forgotten zero_grad: G's step recomputes the fakes, but the leak is still in .grad
    g_loss = _bce(discriminator(generator(z)).squeeze(1), 1.0)
    g_loss.backward()
    accumulated = _grad_vector(generator).clone()
    clean = accumulated - leak
    accumulated_relative_error = ((accumulated - clean).norm() / clean.norm()).item()

    # fixed: detach in (1)
    generator, discriminator = _players(seed)
    fake = generator(z)
    d_loss = (_bce(discriminator(real).squeeze(1), 1.0)
              + _bce(discriminator(fake.detach()).squeeze(1), 0.0))
    d_loss.backward()
    fixed_grad_is_none = all(p.grad is None for p in generator.parameters())
    return DetachResult(leak.norm().item(), fixed_grad_is_none, second_backward_error,
                        accumulated_relative_error)


# --- (d) the two losses summed into one objective ---------------------------------------

@dataclass(frozen=True)
class SummedLossResult:
    """One optimiser on $L_D + L_G$ against the alternating game, on 1-D Gaussians.

    ``minimax_generator_grad_norm``: $G$'s gradient of $L_D + L_G$ with the minimax
    generator loss (exactly 0). ``d_grad_share_from_generator_term``: at the start, the
    norm of $D$'s gradient coming from $G$'s term over the norm from $D$'s own loss.
    ``summed_*`` / ``alternating_*``: after training, the mean of $D(G(z))$, of $D(x)$ and
    the generator's mean (the data mean is ``data_mean``).
    """

    minimax_generator_grad_norm: float
    d_grad_share_from_generator_term: float
    data_mean: float
    summed_d_fake: float
    summed_d_real: float
    summed_generator_mean: float
    alternating_d_fake: float
    alternating_d_real: float
    alternating_generator_mean: float


def _gaussian_players(seed: int) -> tuple[nn.Module, nn.Module]:
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    generator = nn.Linear(1, 1)                      # G(z) = a z + b
    with torch.no_grad():
        generator.weight.fill_(1.0)
        generator.bias.fill_(0.0)
    discriminator = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    return generator, discriminator


def summed_losses(steps: int = 150, batch_size: int = 64, data_mean: float = 3.0,
                  seed: int = 0) -> SummedLossResult:
    """Erratum (d): ``(d_loss + g_loss).backward()`` and one optimiser over both networks.

    With the minimax generator loss $L_G = \\mathbb E \\log(1 - D(G(z)))$ the sum is
    $-\\mathbb E\\log D(x)$: the $\\log(1 - D(G(z)))$ terms cancel and $G$ gets exactly zero
    gradient. With the non-saturating loss the fake terms become
    $-\\log(1 - D(G(z))) - \\log D(G(z))$, minimised by *both* players at $D(G(z)) = 1/2$:
    $G$ is pushed to wherever $D$ says one half, not towards the data, and $D$ is pushed by
    $G$'s term to call the fakes real. Fix: two optimisers, (1) update D, (2) update G.

    Returns:
        :class:`SummedLossResult`.
    """
    data_rng = torch.Generator().manual_seed(seed)
    real = data_mean + 0.5 * torch.randn(steps, batch_size, 1, generator=data_rng)  # (S, B, 1)
    z = torch.randn(steps, batch_size, 1, generator=data_rng)                       # (S, B, 1)

    # minimax sum: G's gradient cancels exactly
    generator, discriminator = _gaussian_players(seed)
    d_real, d_fake = discriminator(real[0]), discriminator(generator(z[0]))
    log_one_minus_d_fake = -F.softplus(d_fake).mean()                   # E log(1 - D(G(z)))
    d_loss = F.softplus(-d_real).mean() - log_one_minus_d_fake          # -E log D(x) - E log(1-D)
    (d_loss + log_one_minus_d_fake).backward()
    minimax_generator_grad_norm = _grad_vector(generator).norm().item()

    # share of D's gradient that comes from G's (non-saturating) term, at the start
    generator, discriminator = _gaussian_players(seed)
    d_fake = discriminator(generator(z[0]))
    own = torch.autograd.grad(F.softplus(-discriminator(real[0])).mean()
                              + F.softplus(d_fake).mean(), list(discriminator.parameters()),
                              retain_graph=True)
    intruding = torch.autograd.grad(F.softplus(-d_fake).mean(), list(discriminator.parameters()))
    share = (torch.cat([g.flatten() for g in intruding]).norm()
             / torch.cat([g.flatten() for g in own]).norm()).item()

    # wrong: one optimiser on the non-saturating sum
    generator, discriminator = _gaussian_players(seed)
    optimiser = torch.optim.Adam([*generator.parameters(), *discriminator.parameters()], lr=2e-2)
    for step in range(steps):
        optimiser.zero_grad()
        d_fake = discriminator(generator(z[step]))
        d_loss = F.softplus(-discriminator(real[step])).mean() + F.softplus(d_fake).mean()
        g_loss = F.softplus(-d_fake).mean()                              # -E log D(G(z))
        (d_loss + g_loss).backward()
        optimiser.step()
    summed = _final_state(generator, discriminator, real[-1], z[-1])

    # fixed: alternating updates with two optimisers
    generator, discriminator = _gaussian_players(seed)
    optimiser_d = torch.optim.Adam(discriminator.parameters(), lr=2e-2)
    optimiser_g = torch.optim.Adam(generator.parameters(), lr=2e-2)
    for step in range(steps):
        # (1) update D
        optimiser_d.zero_grad()
        fake = generator(z[step])
        d_loss = (F.softplus(-discriminator(real[step])).mean()
                  + F.softplus(discriminator(fake.detach())).mean())
        d_loss.backward()
        optimiser_d.step()
        # (2) update G
        optimiser_g.zero_grad()
        g_loss = F.softplus(-discriminator(fake)).mean()                 # -E log D(G(z))
        g_loss.backward()
        optimiser_g.step()
    alternating = _final_state(generator, discriminator, real[-1], z[-1])
    return SummedLossResult(minimax_generator_grad_norm, share, data_mean, *summed, *alternating)


def _final_state(generator: nn.Module, discriminator: nn.Module, real: Tensor,
                 z: Tensor) -> tuple[float, float, float]:
    with torch.no_grad():
        fake = generator(z)
        return (torch.sigmoid(discriminator(fake)).mean().item(),
                torch.sigmoid(discriminator(real)).mean().item(), fake.mean().item())


# --- (e) an affine "discriminator" -------------------------------------------------------

@dataclass(frozen=True)
class AffineResult:
    """An affine map used as a discriminator.

    ``output_range``: its outputs on real data (not in $[0, 1]$); ``bce_error``: what
    ``nn.BCELoss`` raises on them; ``nan_fraction``: share of NaN in a hand-written
    $\\log D + \\log(1 - D)$. Then, trained with ``BCEWithLogitsLoss`` to tell
    $\\mathcal N(0, 1)$ from a two-mode mixture with the same mean: held-out loss (nats per
    sample; $\\log 2 = 0.693$ is chance) of a linear logit (``loss_linear``) and of a small MLP
    (``loss_mlp``), the linear critic's largest $|D(x) - \\tfrac12|$ (``linear_max_deviation``)
    and the MLP's held-out accuracy (``accuracy_mlp``).
    """

    output_range: tuple[float, float]
    bce_error: str | None
    nan_fraction: float
    loss_linear: float
    loss_mlp: float
    linear_max_deviation: float
    accuracy_mlp: float


def _equal_mean_samples(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(2n, 1)`` draws of $\\mathcal N(0,1)$ and of $\\frac12\\mathcal N(\\pm 2, 0.5^2)$,
    mirrored ($x$ and $-x$) so both sample means are exactly 0."""
    real = torch.randn(n, 1, generator=generator)                         # (n, 1)
    signs = 2.0 * (torch.rand(n, 1, generator=generator) < 0.5) - 1.0
    fake = signs * 2.0 + 0.5 * torch.randn(n, 1, generator=generator)      # (n, 1)
    return torch.cat([real, -real]), torch.cat([fake, -fake])


def _fit(model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
         steps: int) -> tuple[float, Tensor, float]:
    """Train ``model`` (a logit) real vs fake; return held-out (loss, D values, accuracy)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    inputs = torch.cat(train)
    labels = torch.cat([torch.ones(len(train[0])), torch.zeros(len(train[1]))])
    for _ in range(steps):
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(inputs).squeeze(1), labels)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits = model(torch.cat(test)).squeeze(1)                       # (n_test,)
        labels = torch.cat([torch.ones(len(test[0])), torch.zeros(len(test[1]))])
        test_loss = F.binary_cross_entropy_with_logits(logits, labels).item()
        accuracy = ((logits > 0).float() == labels).float().mean().item()
    return test_loss, torch.sigmoid(logits), accuracy


def affine_discriminator(n: int = 250, steps: int = 200, seed: int = 0) -> AffineResult:
    """Erratum (e): ``discriminator = nn.Linear(d, 1)`` used as a probability.

    Its outputs are unbounded, so ``nn.BCELoss`` refuses them and $\\log(1 - D)$ is NaN
    wherever $D > 1$ (and $\\log D$ wherever $D < 0$). Adding the sigmoid (or using
    ``BCEWithLogitsLoss``) makes it train, but a *linear* logit $w^\\top x + b$ cannot tell
    apart two distributions with equal means: the logistic loss is convex and, with
    mirrored samples, symmetric in $w$, so it is minimised at $w = 0$, $b = 0$ -- the
    critic answers $\\tfrac12$ everywhere. Fix: a nonlinear $D$ (an MLP).

    Returns:
        :class:`AffineResult`.
    """
    data_rng = torch.Generator().manual_seed(seed)
    train = _equal_mean_samples(n, data_rng)
    test = _equal_mean_samples(n, data_rng)
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    affine = nn.Linear(1, 1)
    with torch.no_grad():
        affine.weight.fill_(1.5)                      # any non-zero weight will do
        outputs = affine(torch.cat(train)).squeeze(1)                     # (4n,)
    bce_error = _error_message(lambda: nn.BCELoss()(outputs, torch.ones_like(outputs)))
    log_terms = torch.log(outputs) + torch.log(1 - outputs)               # log D + log(1 - D)
    loss_linear, d_linear, _ = _fit(nn.Linear(1, 1), train, test, steps)
    mlp = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    loss_mlp, _, accuracy_mlp = _fit(mlp, train, test, steps)
    return AffineResult((outputs.min().item(), outputs.max().item()), bce_error,
                        log_terms.isnan().float().mean().item(), loss_linear, loss_mlp,
                        (d_linear - 0.5).abs().max().item(), accuracy_mlp)


# --- checkerboard artefacts of transposed convolutions ---------------------------------

@dataclass(frozen=True)
class CheckerboardResult:
    """Period-2 pattern left by each upsampling block.

    ``score_*``: spread (standard deviation) of the mean output over the four pixel phases
    $(i \\bmod 2, j \\bmod 2)$ divided by the mean $|\\text{output}|$, averaged over random
    weight draws, on a constant input (0 means no pattern). ``map_*``: one draw's output
    ``(2H, 2W)``, for ``imshow``.
    """

    score_transposed: float
    score_resize: float
    map_transposed: Tensor
    map_resize: Tensor


def checkerboard(channels: int = 8, size: int = 8, draws: int = 64,
                 seed: int = 0) -> CheckerboardResult:
    """Upsample a constant image with random blocks and measure the period-2 pattern.

    A constant input should give a constant output away from the borders. A $4\\times4$
    transposed convolution with stride 2 computes each output phase from a different
    $2\\times2$ subset of its kernel taps, so unless those sums happen to agree the output
    alternates with period 2: a checkerboard (Odena et al. 2016). Nearest-neighbour resize
    then a $3\\times3$ convolution applies the same taps everywhere.

    Returns:
        :class:`CheckerboardResult`.
    """
    seed_everything(seed, deterministic=False)   # CPU ops here are deterministic
    x = torch.ones(1, channels, size, size)                               # (1, C, H, W)
    scores: dict[str, float] = {}
    maps: dict[str, Tensor] = {}
    for mode in ("transposed", "resize"):
        total = 0.0
        for draw in range(draws):
            block = upsample_block(channels, 1, mode)
            with torch.no_grad():
                output = block(x)[0, 0]                                   # (2H, 2W)
            interior = output[2:-2, 2:-2]                                 # borders see padding
            phases = torch.stack([interior[i::2, j::2].mean()
                                  for i in range(2) for j in range(2)])   # (4,)
            total += (phases.std(unbiased=False) / interior.abs().mean().clamp_min(1e-12)).item()
            if draw == 0:
                maps[mode] = output
        scores[mode] = total / draws
    return CheckerboardResult(scores["transposed"], scores["resize"], maps["transposed"],
                              maps["resize"])
