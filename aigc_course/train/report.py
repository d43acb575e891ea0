"""The metric report of a trained model: sample it, then :func:`aigc_course.metrics.evaluate`.

:func:`model_report` is the one model-level evaluation of the package: it draws ``n``
samples of any model kind through :func:`aigc_course.kinds.draw` (conditional models
draw the classes in turn), times the sampling, and scores the samples with
:func:`aigc_course.metrics.evaluate` against a real split: FID, KID, Inception Score,
improved precision and recall and, for grey digits, the judge's recognisability, class
coverage and label accuracy. Chapters 03 and 05, chapter 08's comparison table and the
shipped-model tests all call it, so "judge FID" is computed one way everywhere.
"""

from __future__ import annotations

from typing import Any

from aigc_course.kinds import GenerativeModel, draw
from aigc_course.metrics import FeatureExtractor, evaluate


def model_report(model: GenerativeModel, n: int = 1000, *, seed: int = 0,
                 reference: str = "train", dataset: str = "digits",
                 extractor: FeatureExtractor | None = None, kid_subsets: int = 100,
                 **sample_options: Any) -> dict[str, Any]:
    """Every metric of ``n`` samples of ``model``, and the sampling time.

    Args:
        model: a trained model of any kind (its ``sample(n, *, y, generator, ...)``).
        n: samples (use 1,000: FID is biased on few).
        seed: seeds the samples and the metrics' subsets.
        reference, dataset: the real split the samples are compared with, loaded at the
            samples' size.
        extractor: the feature space (``None``: the digits judge).
        kid_subsets: KID subsets.
        **sample_options: the kind's sampling options (``steps=``, ``guidance=``).

    Returns:
        :func:`aigc_course.metrics.evaluate`'s report (``label_accuracy`` for a
        conditional model) plus ``sample_seconds``.
    """
    images, labels, seconds = draw(model, n, seed=seed, **sample_options)
    scores = evaluate(images, labels if model.conditional else None, reference,
                      extractor=extractor, dataset=dataset, kid_subsets=kid_subsets, seed=seed)
    return {**scores, "sample_seconds": seconds}
