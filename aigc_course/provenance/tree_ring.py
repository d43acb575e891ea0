"""Tree-Ring watermarks (Wen, Kirchenbauer, Geiping & Goldstein 2023, "Tree-Ring
Watermarks: Fingerprints for Diffusion Images that are Invisible and Robust", NeurIPS):
the mark is written into the diffusion model's starting noise $x_T$, not into the image.

Marking. Take fresh noise $x_T \\sim \\mathcal N(0, I)$, its centred 2-D Fourier transform
$F = \\mathrm{fftshift}(\\mathrm{FFT2}(x_T))$, and overwrite the coefficients within a disc
$M$ of radius $r$ bins around the centre with the key's pattern $c$, constant on each ring
(the paper's "rings" variant): ring 1 is the centre and its 4 neighbours ($d \\le 1$), ring
$i$ the bins with $i - 1 < d \\le i$. Then $x_T = \\mathrm{IFFT2}(\\mathrm{ifftshift}(F))$,
and the model samples from it as usual (deterministic DDIM, any label, any guidance).

Detection (the detector knows neither label nor prompt). Invert the image to $\\hat x_T$
with DDIM inversion (:meth:`~aigc_course.diffusion.DDIM.invert`) on the network's null
label, same $S$, and compare $\\hat F = \\mathrm{fftshift}(\\mathrm{FFT2}(\\hat x_T))$ with $c$
on $M$: the paper's distance $\\frac1{|M|}\\sum_{k \\in M}|\\hat F_k - c_k|$ (score: its
negative), or its test of $H_0$: $\\hat x_T \\sim \\mathcal N(0, \\sigma^2 I)$, under which
$$X = \\sum_{k \\in M} \\frac{|\\hat F_k - c_k|^2}{HW\\sigma^2} \\sim
\\chi'^2_{|M|}(\\lambda), \\qquad \\lambda = \\sum_{k \\in M} \\frac{c_k^2}{HW\\sigma^2}$$
(a marked image has a small $X$). With $\\sigma^2$ estimated from the $HW - |M|$ bins off
$M$, $\\hat\\sigma^2 = \\sum_{k \\notin M}|\\hat F_k|^2 / (HW(HW - |M|))$, an independent
$\\sigma^2\\chi^2_{HW-|M|}/(HW-|M|)$, the ratio $\\hat X/|M|$ is a noncentral
$F'(|M|, HW - |M|; \\lambda)$, evaluated at the plug-in $\\hat\\lambda$:
$p = P(F' \\le \\hat X/|M|)$, score $-\\log_{10} p$.

Simplified or changed, and why:
* The key values are real, one per ring, where the paper copies complex FFT values of a
  noise draw. A pattern constant on a ring that is symmetric about the centre is the
  transform of a real image only if it is real; the paper's imaginary parts are discarded
  by its $\\mathrm{Re}(\\mathrm{IFFT2})$ and cannot be detected.
* Every key carries exactly the energy of the coefficients it replaces,
  $\\sum_{k \\in M} c_k^2 = HW|M|$, so $x_T$ keeps unit power for *every* key. Drawn
  $c \\sim \\mathcal N(0, HW)$ without that scaling (unit power only on average over keys),
  keys whose rings came out weak gave $x_T$ a standard deviation of 0.91-0.92, and on those
  the shipped U-Net's DDIM round trip failed (correlation of $x_T$ and its inversion -0.27
  and -0.17 for key seeds 3 and 1, against 0.47-0.72 for keys 1-8 scaled). For one key,
  each pixel is $\\mathcal N(\\mu_p, 1 - |M|/HW)$ with $\\mu = \\mathrm{IFFT2}(c\\,1_M)$ a fixed
  pattern, peaked at the origin pixel (a ring pattern's transform is radial):
  :func:`noise_moments`. The mark is not invisible in $x_T$'s distribution, only in each
  image.
* $X$ counts $\\hat F$ on all of $M$, where conjugate pairs $\\hat F_{-k} =
  \\overline{\\hat F_k}$ repeat each other: with the $1/(HW\\sigma^2)$ weight the sum is exactly
  the $|M|$ independent real coordinates of a real DFT, so $X$ has $|M|$ degrees of freedom
  (the paper's code counts $2|M|$: real and imaginary parts of every bin). $\\sigma$ is
  estimated per image from the coefficients outside $M$ (the paper takes the standard
  deviation of the masked ones, which the key inflates on marked images) and the test is
  the noncentral $F$ rather than the paper's $\\chi'^2$ (which ignores the estimate's own
  noise: at $16 \\times 16$, $r = 4$, it gives 1.5% for a nominal 1%).
* One image size and channel count per key; every channel is marked (the paper marks one of
  Stable Diffusion's 4 latent channels). Pixel space, since the course's DDPM has no VAE.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy import stats

from aigc_course.diffusion.ddim import DDIM
from aigc_course.provenance.attacks import Attack, detection_rate, roc_auc, standard_attacks
from aigc_course.provenance.keys import load_key, new_seed, save_key
from aigc_course.train.diffusion import DiffusionModel

Tensor = torch.Tensor
Statistic = Literal["distance", "log10p"]
STATISTICS = ("distance", "log10p")
KIND = "tree_ring"


@dataclass(frozen=True)
class TreeRingKey:
    """A Tree-Ring key: the secret seed and what the detector needs to find the mark.

    Args:
        seed: secret seed of the ring values (63 bits from :func:`new_seed`).
        shape: ``(C, H, W)`` of the model's noise $x_T$ (``model.noise_shape``).
        radius: $r$, the disc's radius in frequency bins ($r$ rings), ``1 <= r < min(H, W)/2``.
        steps: DDIM steps $S$ of marked sampling and of the detector's inversion.
    """

    seed: int
    shape: tuple[int, int, int]
    radius: int = 4
    steps: int = 10

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be (C, H, W), got {self.shape}")
        limit = min(self.shape[1:]) / 2
        if not 1 <= self.radius < limit:
            raise ValueError(f"radius must be in [1, {limit:g}) for shape {self.shape}, "
                             f"got {self.radius}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def save(self, path: str | Path) -> Path:
        """Write the key (kind ``"tree_ring"``) atomically with :func:`save_key`."""
        return save_key(path, KIND, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> TreeRingKey:
        """Read a key saved by :meth:`save`; another kind's key or a damaged file raises."""
        settings = load_key(path, KIND)
        try:
            c, h, w = (int(size) for size in settings["shape"])
            return cls(seed=int(settings["seed"]), shape=(c, h, w),
                       radius=int(settings["radius"]), steps=int(settings["steps"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a complete Tree-Ring key ({error})") from error


def make_key(shape: tuple[int, ...], radius: int = 4, steps: int = 10,
             seed: int | None = None) -> TreeRingKey:
    """A new key for noise of ``shape`` ``(C, H, W)`` (``seed=None``: a fresh secret one)."""
    return TreeRingKey(new_seed() if seed is None else int(seed),
                       tuple(int(s) for s in shape), radius, steps)  # type: ignore[arg-type]


def rings(shape: tuple[int, ...], radius: int) -> Tensor:
    """Ring index of each centred frequency bin ``(H, W)``: 0 outside the disc, else
    $\\max(1, \\lceil d \\rceil)$ with $d$ the distance to the centre bin $(H/2, W/2)$."""
    h, w = shape[-2:]
    i = torch.arange(h).double() - h // 2
    j = torch.arange(w).double() - w // 2
    d = (i[:, None] ** 2 + j[None, :] ** 2).sqrt()                  # (H, W)
    ring = d.ceil().clamp(min=1).long()
    return torch.where(d <= radius, ring, torch.zeros_like(ring))


def pattern(key: TreeRingKey) -> tuple[Tensor, Tensor]:
    """The key's mask $M$ ``(H, W)`` bool and target $c$ ``(C, H, W)`` (0 off the mask):
    one value per channel and ring, drawn $\\mathcal N(0, 1)$ from the key's seed and scaled
    so that $\\sum_{k \\in M} c_k^2 = HW|M|$, the expected energy of the coefficients it
    replaces ($E|F_k|^2 = HW$ for white noise)."""
    c, h, w = key.shape
    ring = rings(key.shape, key.radius)                             # (H, W)
    generator = torch.Generator().manual_seed(key.seed)
    values = torch.randn(c, key.radius + 1, generator=generator)
    values[:, 0] = 0                                                # (C, r + 1), ring 0: off
    target = values[:, ring]                                        # (C, H, W)
    mask = ring > 0
    # the energy of the coefficients it replaces, HW |M| per channel (E|F_k|^2 = HW)
    energy = target[:, mask].pow(2).sum(1, keepdim=True)            # (C, 1)
    target = target * (h * w * int(mask.sum()) / energy).sqrt()[..., None]
    return mask, target                                             # (H, W), (C, H, W)


def _spectrum(x: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))     # centred, (N, C, H, W)


def marked_noise(key: TreeRingKey, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Starting noise ``(n, C, H, W)`` carrying the key: fresh $\\mathcal N(0, I)$ with its
    centred spectrum set to $c$ on $M$; real up to rounding (mask and $c$ are symmetric)."""
    mask, target = pattern(key)
    noise = torch.randn((n, *key.shape), generator=generator)      # (n, C, H, W)
    spectrum = _spectrum(noise)
    spectrum[..., mask] = target[:, mask].to(spectrum.dtype)        # F_k = c_k on M
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real


def noise_moments(key: TreeRingKey) -> tuple[Tensor, float]:
    """Closed-form mean $\\mu$ ``(C, H, W)`` and per-pixel variance $1 - |M|/HW$ of
    :func:`marked_noise` (the projection of white noise off $M$; the key's pattern on $M$)."""
    mask, target = pattern(key)
    h, w = key.shape[1:]
    mean = torch.fft.ifft2(torch.fft.ifftshift(target.to(torch.complex64), dim=(-2, -1))).real
    return mean, 1 - int(mask.sum()) / (h * w)


def _check(model: DiffusionModel, images: Tensor, key: TreeRingKey | None = None) -> None:
    if key is not None and not isinstance(key, TreeRingKey):
        raise ValueError(f"expected a TreeRingKey, got {type(key).__name__} (a key of "
                         "another scheme?)")
    expected = tuple(model.noise_shape)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images must be (N, {', '.join(map(str, expected))}) for this "
                         f"model, got {tuple(images.shape)}")
    if key is not None and tuple(key.shape) != expected:
        raise ValueError(f"the key is for shape {key.shape}, the model's noise is {expected}")


def generate(model: DiffusionModel, key: TreeRingKey, n: int, y: Tensor | None = None,
             steps: int | None = None, guidance: float = 0.0,
             generator: torch.Generator | None = None) -> Tensor:
    """``n`` marked samples ``(n, C, H, W)``: DDIM ($\\eta = 0$) from :func:`marked_noise`.

    Args:
        model: the diffusion model (``model.noise_shape == key.shape``).
        key: the Tree-Ring key. n: how many.
        y: ``(n,)`` labels (``None``: the classes in turn).
        steps: DDIM steps (``None``: ``key.steps``).
        guidance: classifier-free guidance scale $w$.
        generator: random generator of the noise off the mask.
    """
    _check(model, torch.zeros(0, *model.noise_shape), key)
    noise = marked_noise(key, n, generator)
    return model.sample(n, y=y, steps=key.steps if steps is None else steps,
                        guidance=guidance, noise=noise)


def invert(model: DiffusionModel, images: Tensor, steps: int = 10,
           batch_size: int = 1024) -> Tensor:
    """$\\hat x_T$ ``(N, C, H, W)`` of ``images`` by DDIM inversion on the null label
    (unconditional: the detector does not know the class), ``batch_size`` at a time."""
    _check(model, images)
    ddim = DDIM(model.network, model.schedule)
    device = model.schedule.beta.device
    out = [ddim.invert(chunk.to(device), steps).cpu() for chunk in images.split(batch_size)]
    return torch.cat(out) if out else images.new_zeros(images.shape)


def score_noise(x_T: Tensor, key: TreeRingKey, statistic: Statistic = "distance") -> Tensor:
    """Scores ``(N,)`` of inverted noise ``(N, C, H, W)`` (higher = marked).

    ``"distance"``: $-\\frac1{|M|}\\sum_{k \\in M}|\\hat F_k - c_k|$ averaged over channels
    (the paper's L1 distance); ``"log10p"``: $-\\log_{10} P(F'_{|M|, HW-|M|}(\\hat\\lambda)
    \\le \\hat X/|M|)$ with $\\hat\\sigma^2$ from the bins off $M$ (module docstring).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(STATISTICS)}")
    if x_T.dim() != 4 or tuple(x_T.shape[1:]) != tuple(key.shape):
        raise ValueError(f"noise must be (N, {', '.join(map(str, key.shape))}), got "
                         f"{tuple(x_T.shape)}")
    mask, target = pattern(key)
    spectrum = _spectrum(x_T.double())                             # (N, C, H, W)
    diff = (spectrum - target.double())[..., mask]                  # (N, C, |M|)
    if statistic == "distance":
        return -diff.abs().mean(dim=(1, 2)).float()
    n_bins = x_T.shape[-2] * x_T.shape[-1]
    sigma2 = spectrum[..., ~mask].abs().pow(2).mean(dim=(1, 2)) / n_bins   # (N,) Parseval
    c = target[:, mask].double()                                    # (C, |M|)
    x = diff.abs().pow(2).sum(dim=(1, 2)) / (n_bins * sigma2)      # X, (N,)
    lam = c.pow(2).sum() / (n_bins * sigma2)                      # lambda, (N,)
    df = int(mask.sum()) * key.shape[0]                             # |M| per channel
    df_off = int((~mask).sum()) * key.shape[0]
    log_p = stats.ncf.logcdf((x / df).numpy(), df, df_off, lam.numpy())  # ln P(F' <= X/|M|)
    return torch.from_numpy(-np.asarray(log_p) / math.log(10)).float()


def score(model: DiffusionModel, images: Tensor, key: TreeRingKey,
          steps: int | None = None, statistic: Statistic = "distance") -> Tensor:
    """Detector scores ``(N,)`` of ``images`` ``(N, C, H, W)``: :func:`invert` then
    :func:`score_noise` (``steps=None``: ``key.steps``)."""
    _check(model, images, key)
    return score_noise(invert(model, images, key.steps if steps is None else steps), key,
                       statistic)


def round_trip(model: DiffusionModel, key: TreeRingKey, n: int = 64, steps: int | None = None,
               guidance: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Marked $x_T$ -> DDIM sample -> DDIM inversion, both with ``steps``: how well
    $\\hat x_T$ recovers $x_T$ (correlation, MSE) and the key's distance score on each."""
    steps = key.steps if steps is None else steps
    x_T = marked_noise(key, n, torch.Generator().manual_seed(seed))
    images = model.sample(n, steps=steps, guidance=guidance, noise=x_T)
    back = invert(model, images, steps)
    corr = torch.corrcoef(torch.stack([x_T.flatten(), back.flatten()]))[0, 1]
    return {"steps": steps, "guidance": guidance, "n": n, "correlation": float(corr),
            "mse": float((back - x_T).pow(2).mean()),
            "score_true": float(score_noise(x_T, key).mean()),
            "score_inverted": float(score_noise(back, key).mean())}


def attack_table(model: DiffusionModel, key: TreeRingKey, marked: Tensor, unmarked: Tensor,
                 threshold: float, attacks: dict[str, Attack] | None = None) -> pd.DataFrame:
    """Detection after each perturbation: the share of ``marked`` and ``unmarked`` images
    ``(N, C, H, W)`` scoring above ``threshold`` (set on clean images) and the AUC."""
    rows = []
    for name, attack in (standard_attacks() if attacks is None else attacks).items():
        s_m, s_u = score(model, attack(marked), key), score(model, attack(unmarked), key)
        rows.append({"attack": name, "detected": detection_rate(s_m, threshold),
                     "unmarked_above": detection_rate(s_u, threshold),
                     "auc": roc_auc(s_u, s_m)})
    return pd.DataFrame(rows).set_index("attack")
