"""Reports that put models side by side: the layer above training, below the command line.

* :mod:`aigc_course.reports.compare` -- chapter 08's table: every metric for the shipped
  models of chapters 03-05 (loaded through :mod:`aigc_course.kinds`), with a real row.
"""

from aigc_course.reports.compare import COLUMNS, compare_models, sample_model, shipped_checkpoints

__all__ = ["COLUMNS", "compare_models", "sample_model", "shipped_checkpoints"]
