"""Training a judge, the classifier that scores generated images of one dataset.

A judge is split by layer: its network is
:class:`~aigc_course.models.classifier.ImageClassifier`, its training is here (private;
:mod:`aigc_course.metrics.judge` re-exports it), and loading it, training it on first
use and the metrics built on it are in :mod:`aigc_course.metrics.judge`. A judge is
trained on its dataset's train split with the dataset's :data:`RECIPES` entry; the
package ships the judges of the offline sets (``digits``, ``mnist5k``, ``shapes``) in
``aigc_course/checkpoints/judge_<dataset>.pt`` (the common checkpoint format of
:mod:`aigc_course.checkpoint`, kind ``judge``), and ``aigc-course judge --dataset D``
(or ``make judge``) retrains one.

Two additions to plain cross-entropy training, both measured to matter on digits:

* **Resize round trips.** Chapters train generators on images resized to 16x16 or
  32x32; the judge brings those samples to its native size (area downsampling), which
  blurs them slightly. Each minibatch is therefore resized by the registry's
  :func:`~aigc_course.data.registry.resize` to one of the recipe's sizes and brought
  back by the judge's own resize. The shipped digits judge classifies the test digits
  upsampled to 16x16 and 28x28 with 100% and 99.3% accuracy; trained on 8x8 only,
  97.0% and 94.1%.
* **Outlier exposure** (Hendrycks, Mazeika & Dietterich 2019, "Deep anomaly detection
  with outlier exposure", eq. 1): the loss adds $\\lambda\\,\\mathrm{CE}(\\mathcal U, p(x'))$,
  the cross-entropy between the uniform distribution and the judge's prediction on
  non-images $x'$ (uniform noise, pixel-shuffled images, smooth blobs, constant
  images). Without it the digits judge called 92% of uniform noise and every blank
  image "recognisable" (confidence >= 0.9); with it, 0%, and 0% of held-out Gaussian
  noise.

Simplified: a fixed number of epochs with Adam and a cosine learning-rate decay, no
early stopping (the validation accuracy is reported, not used to pick a model).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from aigc_course.checkpoint import save_checkpoint
from aigc_course.data.registry import info, load_images, resize
from aigc_course.models.classifier import ClassifierConfig, ImageClassifier
from aigc_course.utils import Timer, count_params, get_device, seeded

Tensor = torch.Tensor
KIND = "judge"
# sizes of the resize round trip, one drawn per minibatch; 8 (no round trip) three times,
# so half the minibatches stay sharp: 8x8 test accuracy then matches no round trips
ROUND_TRIP_SIZES = (8, 8, 8, 16, 24, 32)


@dataclasses.dataclass(frozen=True)
class JudgeRecipe:
    """How the judge of one dataset is trained.

    Attributes:
        config: the network (native size, channels, stages).
        epochs: passes over the train split.
        batch_size: minibatch size.
        lr: Adam's learning rate.
        max_shift: random translation by up to this many pixels.
        round_trip_sizes: each minibatch is resized from the dataset's native size to
            one of these and back to the judge's size.
        flip: random horizontal flips (natural images, not digits).
        device: ``"cpu"`` (small sets: as fast, and reproducible) or ``"auto"``.
    """

    config: ClassifierConfig
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    max_shift: int = 1
    round_trip_sizes: tuple[int, ...] = ROUND_TRIP_SIZES
    flip: bool = False
    device: str = "cpu"


_MNIST_LIKE = ClassifierConfig(image_size=16, channels=(32, 64, 64))   # 28 -> 16 -> 2x2
#: One recipe per dataset that has a judge. Sizes: digits are 8x8, MNIST-like sets 28x28
#: (generators use 16, 28 or 32), the RGB sets 32x32.
RECIPES: dict[str, JudgeRecipe] = {
    "digits": JudgeRecipe(ClassifierConfig(), epochs=40),
    "mnist5k": JudgeRecipe(_MNIST_LIKE, epochs=20, max_shift=2,
                           round_trip_sizes=(16, 28, 32)),
    "mnist": JudgeRecipe(_MNIST_LIKE, epochs=6, batch_size=256, max_shift=2,
                         round_trip_sizes=(16, 28, 32), device="auto"),
    "fashion_mnist": JudgeRecipe(_MNIST_LIKE, epochs=10, batch_size=256, max_shift=1,
                                 round_trip_sizes=(16, 28, 32), flip=True, device="auto"),
    "shapes": JudgeRecipe(ClassifierConfig(image_size=16, channels=(16, 32, 32),
                                           num_classes=3, in_channels=3),
                          epochs=15, max_shift=2, round_trip_sizes=(16, 32)),
    "cifar10": JudgeRecipe(ClassifierConfig(image_size=32, channels=(32, 64, 128, 128),
                                            hidden=256, in_channels=3),
                           epochs=20, batch_size=256, max_shift=3,
                           round_trip_sizes=(32,), flip=True, device="auto"),
}


def recipe(dataset: str) -> JudgeRecipe:
    """The :class:`JudgeRecipe` of ``dataset``; ``ValueError`` lists the datasets with one."""
    if dataset not in RECIPES:
        info(dataset)                                  # an unknown name: lists the datasets
        raise ValueError(f"no judge for dataset {dataset!r} (it is not an image set with "
                         f"classes); judges exist for: {', '.join(sorted(RECIPES))}")
    return RECIPES[dataset]


def random_translate(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by a random integer offset, filling with background ``-1``.

    Args:
        x: images ``(B, C, H, W)``.
        max_shift: largest shift in pixels along each axis (0 returns ``x``).
        generator: the random generator for the offsets.

    Returns:
        The shifted images, ``(B, C, H, W)``.
    """
    if max_shift == 0:
        return x
    b, c, h, w = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m), value=-1.0)                        # (B, C, H+2m, W+2m)
    dy, dx = torch.randint(0, 2 * m + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]           # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]           # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]                       # (B, 1, 1, 1)
    channel = torch.arange(c)[None, :, None, None]                     # (1, C, 1, 1)
    return padded[batch, channel, rows, cols]                          # (B, C, H, W)


def outliers(x: Tensor, generator: torch.Generator) -> Tensor:
    """Non-images for outlier exposure, as many as ``x``, in four equal kinds.

    Uniform noise, ``x`` with its pixels shuffled (an image's colours without its
    shape), smooth blobs (noise at half the size, upsampled) and constant images.

    Args:
        x: a minibatch ``(B, C, H, W)`` in ``[-1, 1]``.
        generator: the random generator.

    Returns:
        ``(B, C, H, W)`` outliers in ``[-1, 1]``.
    """
    b, c, h, w = x.shape
    k = b // 4
    noise = torch.rand(k, c, h, w, generator=generator) * 2 - 1             # U[-1, 1]
    order = torch.argsort(torch.rand(k, 1, h * w, generator=generator), dim=2)   # (k, 1, H*W)
    shuffled = torch.gather(x[:k].reshape(k, c, h * w), 2, order.expand(-1, c, -1))
    shuffled = shuffled.reshape(k, c, h, w)                                  # pixels moved
    coarse = torch.rand(k, c, h // 2, w // 2, generator=generator) * 2 - 1
    blobs = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    level = torch.rand(b - 3 * k, c, 1, 1, generator=generator) * 2 - 1
    constant = level.expand(-1, c, h, w)                                     # (B-3k, C, H, W)
    return torch.cat([noise, shuffled, blobs, constant])                     # (B, C, H, W)


@torch.no_grad()
def accuracy(model: ImageClassifier, images: Tensor, labels: Tensor,
             batch_size: int = 512) -> float:
    """Share of ``images`` ``(N, C, H, W)`` whose predicted class equals ``labels`` ``(N,)``."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(1).cpu() == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def train_judge(dataset: str = "digits", *, epochs: int | None = None, seed: int = 0,
                batch_size: int | None = None, lr: float | None = None,
                max_shift: int | None = None, round_trip_sizes: tuple[int, ...] | None = None,
                outlier_weight: float = 0.5, max_train: int | None = None,
                config: ClassifierConfig | None = None, device: str | None = None,
                progress: bool = True) -> tuple[ImageClassifier, dict[str, Any]]:
    """Train the judge of ``dataset`` on its train split.

    Minimises $-\\frac{1}{B}\\sum_i \\log p_\\theta(y_i \\mid x_i)
    - \\frac{\\lambda}{K B}\\sum_j\\sum_k \\log p_\\theta(k \\mid x'_j)$ (cross-entropy on
    images, plus outlier exposure on non-images $x'$) with Adam and a cosine
    learning-rate decay to zero.

    Args:
        dataset: a dataset of :data:`RECIPES`; every other argument left ``None``
            comes from its recipe.
        epochs: passes over the training split.
        seed: seeds the initialisation, the shuffling, dropout and augmentation.
        batch_size: minibatch size.
        lr: Adam learning rate.
        max_shift: random translation of training images by up to this many pixels.
        round_trip_sizes: each minibatch is resized to one of these sizes and back
            (the judge's native size alone switches this off).
        outlier_weight: $\\lambda$ of outlier exposure (0 switches it off).
        max_train: use only the first ``max_train`` training images (quick tests).
        config: the architecture.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
        progress: show a ``tqdm`` progress bar over epochs.

    Returns:
        The trained model (eval mode, on CPU) and its metrics: ``dataset``,
        ``image_size`` (native), ``train_accuracy``, ``val_accuracy``, ``test_accuracy``,
        ``final_loss`` (last minibatch, outlier term included: its floor is
        $\\lambda \\log K$), ``seconds``, ``epochs``, ``seed``, ``params``, ``device``.

    Raises:
        ValueError: a dataset without a judge recipe, fewer than one epoch, or round-trip
            sizes below the judge's native size.
    """
    base = recipe(dataset)
    config = config or base.config
    epochs = base.epochs if epochs is None else epochs
    batch_size = batch_size or base.batch_size
    lr = lr or base.lr
    max_shift = base.max_shift if max_shift is None else max_shift
    round_trip_sizes = round_trip_sizes or base.round_trip_sizes
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not round_trip_sizes or min(round_trip_sizes) < config.image_size:
        raise ValueError(f"round_trip_sizes must be sizes >= {config.image_size}, "
                         f"got {round_trip_sizes}")
    with seeded(seed) as generator:
        dev = get_device(device or base.device)
        x_train, y_train = load_images(dataset, "train", max_items=max_train)  # (N, C, s, s)
        model = ImageClassifier(config).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        n = len(x_train)
        steps = epochs * math.ceil(n / batch_size)
        # cosine decay to 0 (Loshchilov & Hutter 2017): lr_t = lr (1 + cos(pi t / T)) / 2
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        loss = torch.zeros(())
        model.train()
        with Timer() as timer:
            for _ in tqdm(range(epochs), desc=f"judge ({dataset})", disable=not progress):
                order = torch.randperm(n, generator=generator)
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    x = random_translate(x_train[idx], max_shift, generator)      # (B, C, s, s)
                    if base.flip:
                        flip = torch.rand(len(x), generator=generator) < 0.5
                        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                    x_out = model.prepare(outliers(x, generator))                  # (B, C, n, n)
                    size = round_trip_sizes[int(torch.randint(len(round_trip_sizes), (),
                                                              generator=generator))]
                    x = model.prepare(resize(x, size))        # to size, area back to native
                    y = y_train[idx].to(dev)
                    optimizer.zero_grad()
                    logits = model(torch.cat([x, x_out]))                          # (2B, K)
                    loss = F.cross_entropy(logits[:len(y)], y)                 # -mean log p(y|x)
                    if outlier_weight > 0:
                        log_p_out = F.log_softmax(logits[len(y):], dim=1)
                        loss = loss - outlier_weight * log_p_out.mean()            # lambda CE(U, p)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
    model = model.cpu().eval()
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "image_size": config.image_size,
        "train_accuracy": accuracy(model, x_train, y_train),
        "val_accuracy": accuracy(model, *load_images(dataset, "val")),
        "test_accuracy": accuracy(model, *load_images(dataset, "test")),
        "final_loss": float(loss.detach()),
        "seconds": timer.seconds,
        "epochs": epochs,
        "seed": seed,
        "params": count_params(model),
        "device": str(dev),
    }
    return model, metrics


def save_judge(model: ImageClassifier, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write a judge checkpoint (kind ``judge``) that loads with ``weights_only=True``.

    Args:
        model: the trained judge.
        path: the ``.pt`` file to write (parent folders are created; written atomically).
        metadata: plain values (str, int, float, bool, None, lists, dicts) to store
            beside the weights (test accuracy, seed, epochs, ...); the torch version
            is added.

    Returns:
        The path written.

    Raises:
        ValueError: ``metadata`` holds a value ``weights_only`` loading refuses.
    """
    return save_checkpoint(path, KIND, model, dataclasses.asdict(model.config), metadata)
