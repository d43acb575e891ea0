"""aigc_course: the implementations behind the course "Generative AI: from data to business value".

The chapter notebooks stay short because the real code lives here, documented and tested:

* :mod:`aigc_course.profiles` -- smoke / cpu / gpu presets and ``auto``;
* :mod:`aigc_course.utils` -- seeding, devices, parameter counts, timers;
* :mod:`aigc_course.data` -- one registry of offline and online datasets, cleaning,
  augmentation, data cards;
* :mod:`aigc_course.models` -- networks; :mod:`aigc_course.judge` -- the digits judge;
* :mod:`aigc_course.metrics` -- Frechet distance and the judge's metrics;
* :mod:`aigc_course.viz` -- figures; :mod:`aigc_course.notebook` -- recording results,
  stripping outputs, student versions.
"""

__version__ = "0.1.0"
