"""Feature extractors: the space in which FID, KID, IS and precision/recall are measured.

Every sample-quality metric of this package compares *features* of images, never
pixels, and the number it returns means something only for one extractor. Four are
offered, all with one interface (:class:`FeatureExtractor`: an ``nn.Module`` whose
``forward`` maps images ``(N, C, H, W)`` in ``[-1, 1]`` to features ``(N, d)``, with a
``num_features`` attribute, so it plugs into torchmetrics as a custom ``feature``):

* ``"judge"`` (default, offline) -- the 64-d penultimate layer of the samples' own
  dataset's judge (:func:`aigc_course.metrics.judge.judge_for`), and its logits for the
  Inception Score. Trained on that dataset: sharp for it, meaningless for any other.
* ``"random"`` (offline, any data) -- a fixed-seed, randomly initialised three-layer
  conv net (256-d). Random features are a known baseline of generative evaluation
  (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative
  models", section 4: a randomly initialised network's embeddings still rank models);
  they need no download and no training, and work for RGB data (``shapes``,
  ``cifar10``). Their limits: they see colour and local texture, not semantics, and
  have no class logits, so no Inception Score.
* ``"pixels"`` -- the raw pixels at 8x8, the baseline every feature space must beat.
* ``"inception"`` (``gpu`` profile) -- the standard Inception-v3 pool features
  (2048-d, Szegedy et al. 2016; the FID of Heusel et al. 2017), through torchmetrics
  (torch-fidelity's port of the TensorFlow weights). The weights are downloaded on
  first use (about 100 MB); without a network :func:`inception_extractor` fails in
  seconds with :class:`FeatureExtractorUnavailable`, and :func:`get_extractor` falls
  back to an offline extractor with a warning.

Simplified: grey images are repeated to RGB for ``random``/``inception``, RGB images
averaged to grey for ``judge``; every extractor resizes to its own input size.
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F

from aigc_course.models.classifier import ImageClassifier

Tensor = torch.Tensor
ExtractorName = Literal["judge", "random", "pixels", "inception", "auto"]
EXTRACTOR_NAMES: tuple[str, ...] = get_args(ExtractorName)
BATCH_SIZE = 500
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"   # torch-fidelity's file
INCEPTION_HOST = ("github.com", 443)                              # where it downloads from
OFFLINE_ALTERNATIVES = ('get_extractor("judge", dataset=...) (the dataset\'s own judge, '
                        'offline, the default) or get_extractor("random") (any images, offline)')


class FeatureExtractorUnavailable(RuntimeError):
    """An extractor cannot be built here (no weights on disk and no network)."""


class FeatureExtractor(nn.Module):
    """Base class: images ``(N, C, H, W)`` in ``[-1, 1]`` -> features ``(N, d)``.

    Attributes:
        name: a short name for tables (``"judge"``, ``"random"``, ...).
        num_features: $d$ (torchmetrics reads this attribute instead of probing).
        num_classes: logits available for the Inception Score (0: none).
    """

    name: str = "base"
    num_features: int = 0
    num_classes: int = 0

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode (no dropout) even inside a module that is switched to training,
        e.g. a torchmetrics metric that holds the extractor."""
        return super().train(False)

    def logits(self, images: Tensor) -> Tensor:
        """Class logits ``(N, K)`` for the Inception Score.

        Raises:
            ValueError: this extractor has no classifier head.
        """
        raise ValueError(f"the {self.name!r} feature extractor has no class logits, so no "
                         "Inception Score; use the 'judge' or 'inception' extractor")


def _to_channels(images: Tensor, channels: int) -> Tensor:
    """Grey -> RGB by repetition, RGB -> grey by the channel mean; ``(N, channels, H, W)``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1)                         # (N, 3, H, W)
    return images.mean(dim=1, keepdim=True)                          # (N, 1, H, W)


class JudgeExtractor(FeatureExtractor):
    """A judge's 64-d penultimate features and K logits (offline, default).

    Args:
        judge: the dataset's judge (:func:`aigc_course.metrics.judge.judge_for`);
            ``None`` is the digits judge.
    """

    name = "judge"
    judge: ImageClassifier

    def __init__(self, judge: ImageClassifier | None = None) -> None:
        super().__init__()
        if judge is None:
            from aigc_course.metrics.judge import default_judge

            judge = default_judge()
        self.judge = judge
        self.dataset = str(judge.metadata.get("dataset", "digits"))
        self.num_features = int(judge.config.feature_dim)           # 64
        self.num_classes = int(judge.config.num_classes)            # K

    def _channels(self, images: Tensor) -> Tensor:
        return _to_channels(images, self.judge.config.in_channels)

    def forward(self, images: Tensor) -> Tensor:
        return self.judge.logits_and_features(self._channels(images))[1]   # (N, 64)

    def logits(self, images: Tensor) -> Tensor:
        return self.judge.logits_and_features(self._channels(images))[0]   # (N, K)


class RandomConvExtractor(FeatureExtractor):
    """A fixed-seed random conv net: 3x(conv 3x3, ReLU, 2x2 average pool), 2x2 pooled.

    Input resized to 32x32 RGB; output $64 \\cdot 2 \\cdot 2 = 256$ features. Weights
    are He-normal (He et al. 2015) from ``torch.Generator().manual_seed(seed)``, so the
    same seed gives the same features on every machine.
    """

    name = "random"

    def __init__(self, seed: int = 0, width: int = 64, input_size: int = 32) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        channels = (3, width // 2, width, width)
        self.convs = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            with torch.no_grad():
                std = (2.0 / (c_in * 9)) ** 0.5                        # He init: Var = 2 / fan_in
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
                assert conv.bias is not None                           # Conv2d's default bias
                conv.bias.zero_()
            self.convs.append(conv)
        self.input_size = input_size
        self.num_features = width * 4
        self.requires_grad_(False).eval()

    def forward(self, images: Tensor) -> Tensor:
        first = self.convs[0]
        assert isinstance(first, nn.Conv2d)                            # built in __init__
        x = _to_channels(images, 3).to(first.weight)
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False)                       # (N, 3, 32, 32)
        for conv in self.convs:
            x = F.avg_pool2d(F.relu(conv(x)), 2)                     # halves H and W
        return F.adaptive_avg_pool2d(x, 2).flatten(1)                # (N, 4 width)


class PixelExtractor(FeatureExtractor):
    """Raw pixels resized to ``size x size`` (area), flattened: $d = C \\cdot s^2$."""

    name = "pixels"

    def __init__(self, size: int = 8, channels: int = 1) -> None:
        super().__init__()
        self.size, self.channels = size, channels
        self.num_features = channels * size * size

    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(_to_channels(images, self.channels), size=(self.size, self.size),
                          mode="area")                               # (N, C, s, s)
        return x.flatten(1)                                          # (N, C s^2)


class InceptionExtractor(FeatureExtractor):
    """Inception-v3 pool features (2048-d) and logits (1008) via torchmetrics."""

    name = "inception"

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat",
                                      features_list=["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=weights_path)
        self.num_features, self.num_classes = 2048, 1008

    def _run(self, images: Tensor) -> tuple[Tensor, Tensor]:
        device = next(self.net.parameters()).device
        x = ((_to_channels(images, 3).clamp(-1, 1) + 1) * 127.5).round().to(device, torch.uint8)
        features, logits = self.net._torch_fidelity_forward(x)      # uint8 (N, 3, H, W) in
        return features.reshape(len(x), -1), logits.reshape(len(x), -1)   # (N, 2048), (N, 1008)

    def forward(self, images: Tensor) -> Tensor:
        return self._run(images)[0]                                  # (N, 2048)

    def logits(self, images: Tensor) -> Tensor:
        return self._run(images)[1]                                  # (N, 1008)


def _network_reachable(address: tuple[str, int] = INCEPTION_HOST, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError:
        return False
    return True


def inception_extractor(timeout: float = 3.0) -> InceptionExtractor:
    """The standard Inception-v3 features, from the torch hub cache or downloaded.

    Args:
        timeout: seconds to wait for the download host before giving up.

    Returns:
        An :class:`InceptionExtractor` in eval mode, on CUDA when available.

    Raises:
        FeatureExtractorUnavailable: torchmetrics / torch-fidelity are not installed,
            or the weights are not cached and the network is unreachable. Raised
            within ``timeout`` seconds; the message names the offline alternatives.
    """
    try:
        import torch_fidelity  # noqa: F401
        import torchmetrics  # noqa: F401
    except ImportError as error:
        raise FeatureExtractorUnavailable(
            f"Inception features need torchmetrics and torch-fidelity ({error}); "
            f"pip install torchmetrics torch-fidelity, or use {OFFLINE_ALTERNATIVES}") from error
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    if cached.is_file():
        return InceptionExtractor(str(cached)).to(device).eval()
    if not _network_reachable(timeout=timeout):
        raise FeatureExtractorUnavailable(
            f"the Inception-v3 weights are not in {cached.parent} and {INCEPTION_HOST[0]} is "
            f"unreachable (offline?); use {OFFLINE_ALTERNATIVES}, or copy {INCEPTION_WEIGHTS} "
            "there from a machine with a network")
    return InceptionExtractor().to(device).eval()


def get_extractor(name: ExtractorName = "judge", profile: str | None = None,
                  channels: int = 1, seed: int = 0, dataset: str = "digits"
                  ) -> FeatureExtractor:
    """Build a feature extractor by name.

    Args:
        name: ``"judge"`` (the judge of ``dataset``), ``"random"``, ``"pixels"``,
            ``"inception"`` or ``"auto"`` (``inception`` on the ``gpu`` profile, else
            the judge of ``dataset``, or ``random`` when it has no judge for images of
            ``channels`` channels).
        profile: the profile name (``"smoke"``, ``"cpu"``, ``"gpu"``); only ``"auto"`` and
            ``"inception"`` read it: off the ``gpu`` profile, Inception is not tried.
        channels: channels of the data (1 or 3), for ``"auto"`` and ``"pixels"``.
        seed: the seed of ``"random"``.
        dataset: whose judge ``"judge"`` means (the samples' own dataset).

    Returns:
        The extractor (eval mode, no gradients). ``"inception"`` or ``"auto"`` fall back
        to the offline choice with a ``UserWarning`` when Inception is unavailable.

    Raises:
        ValueError: an unknown name.
    """
    if name not in EXTRACTOR_NAMES:
        raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(EXTRACTOR_NAMES)}")
    from aigc_course.metrics.judge import RECIPES, judge_for

    fits = dataset in RECIPES and RECIPES[dataset].config.in_channels == channels
    offline: ExtractorName = "judge" if fits else "random"
    if name in ("inception", "auto"):
        if name == "auto" and profile != "gpu":
            return get_extractor(offline, channels=channels, seed=seed, dataset=dataset)
        try:
            return inception_extractor()
        except FeatureExtractorUnavailable as error:
            warnings.warn(f"{error}; falling back to {offline!r} features", stacklevel=2)
            return get_extractor(offline, channels=channels, seed=seed, dataset=dataset)
    if name == "judge":
        return JudgeExtractor(judge_for(dataset))
    if name == "random":
        return RandomConvExtractor(seed=seed)
    return PixelExtractor(channels=channels)


@torch.no_grad()
def extract(images: Tensor, extractor: FeatureExtractor, batch_size: int = BATCH_SIZE,
            logits: bool = False) -> Tensor:
    """Features (or logits) of ``images`` in batches, without gradients.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``, ``N >= 1``.
        extractor: a :class:`FeatureExtractor`.
        batch_size: images per forward pass.
        logits: return the class logits ``(N, K)`` instead of the features.

    Returns:
        ``(N, d)`` (or ``(N, K)``) float32 on CPU.

    Raises:
        ValueError: not a 4-D float tensor, no images, or no logits when asked.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError("expected a float tensor of images (N, C, H, W) in [-1, 1], got "
                         f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}")
    if len(images) == 0:
        raise ValueError("no images (N = 0)")
    extractor.eval()
    function = extractor.logits if logits else extractor.forward
    out = [function(images[i:i + batch_size]).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)
