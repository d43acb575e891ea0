"""aigc_course: the implementations behind the course "Generative AI: from data to business value".

The chapter notebooks stay short because the real code lives here, documented and tested.
The package has one direction (checked by ``lint-imports``; contracts in pyproject.toml),
from the bottom up:

* :mod:`aigc_course.utils`, :mod:`aigc_course.profiles` (every chapter's presets),
  :mod:`aigc_course.checkpoint` (the one checkpoint format) and
  :mod:`aigc_course.kinds` (the model-kind contract and registry, ``load_or_train``);
* :mod:`aigc_course.data` -- one registry of offline and online datasets, cleaning,
  augmentation, data cards; :mod:`aigc_course.divergences`, :mod:`aigc_course.viz`;
* :mod:`aigc_course.models` -- networks and their configs (the judge's network too);
* :mod:`aigc_course.diffusion` (DDPM, DDIM, guidance) and :mod:`aigc_course.losses`;
* :mod:`aigc_course.metrics` -- pure functions of tensors and features (FID, KID, IS,
  precision/recall, PSNR/SSIM, the judge's scores);
* :mod:`aigc_course.train` -- plain training loops, each model kind's ``KIND``;
* :mod:`aigc_course.reports`, :mod:`aigc_course.widgets`, :mod:`aigc_course.errata`,
  :mod:`aigc_course.gan_theory`, :mod:`aigc_course.exercises`;
* :mod:`aigc_course.cli` (``aigc-course``) and :mod:`aigc_course.notebook` (recording
  results, stripping outputs, student versions).
"""

__version__ = "0.1.0"
