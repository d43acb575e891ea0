"""Solutions to the exercises of chapter 03 (GANs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aigc_course.losses import d_loss_minimax

Tensor = torch.Tensor


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss $-\\frac1B \\sum_b \\log D(G(z_b))$.

    With $D = \\mathrm{sigmoid}(a)$ on the discriminator's logit $a$,
    $-\\log \\mathrm{sigmoid}(a) = \\log(1 + e^{-a}) = \\mathrm{softplus}(-a)$: computed from
    the logit it never takes the log of an underflowed probability.

    Args:
        fake_logits: ``(B,)`` discriminator logits on generated samples.

    Returns:
        The scalar loss.
    """
    return F.softplus(-fake_logits).mean()                 # -log sigmoid(a), averaged


def discriminator_step(generator: nn.Module, discriminator: nn.Module,
                       optimiser: torch.optim.Optimizer, real: Tensor, z: Tensor) -> float:
    """One discriminator update that leaves the generator untouched.

    $D$ minimises $-\\log D(x) - \\log(1 - D(G(z)))$ (binary cross-entropy: real -> 1,
    fake -> 0); afterwards no generator parameter has a ``.grad``.

    Args:
        generator: maps ``z`` to samples. discriminator: maps samples to ``(B,)`` logits.
        optimiser: over the discriminator's parameters only.
        real: ``(B, ...)`` data. z: ``(B, ...)`` latent codes.

    Returns:
        The discriminator loss.
    """
    optimiser.zero_grad()
    # Detached: without it the backward pass also fills the generator's .grad (a wasted
    # backward through G) and, if G's step does not zero its gradients first, pushes G
    # in the discriminator's direction.
    fake = generator(z).detach()                           # no gradient flows into G
    loss = d_loss_minimax(discriminator(real), discriminator(fake))     # logits (B,), (B,)
    loss.backward()
    optimiser.step()
    return loss.item()


def minibatch_stddev(x: Tensor) -> Tensor:
    """Append the minibatch standard deviation as one extra channel (Karras et al. 2018).

    For each feature (channel, pixel) the standard deviation over the batch, averaged
    over all features, is one number $s$; it is broadcast as a constant channel. A batch
    of identical fakes has $s = 0$, a varied real batch does not, so the discriminator can
    see a collapsed generator.

    Args:
        x: ``(B, C, H, W)`` features.

    Returns:
        ``(B, C + 1, H, W)``.
    """
    s = x.std(dim=0, unbiased=False).mean()                # scalar: mean over C, H, W
    s_map = s.expand(x.shape[0], 1, *x.shape[2:])          # (B, 1, H, W)
    return torch.cat([x, s_map], dim=1)                    # (B, C + 1, H, W)
