"""Reports that put models side by side: the layer above training, below the command line.

* :mod:`aigc_course.reports.compare` -- chapter 08's table: every metric for the shipped
  models of chapters 03-05 (loaded through :mod:`aigc_course.kinds`), with a real row.
* :mod:`aigc_course.reports.audit` -- chapter 11's audits of a generator: class shares
  against its reference (total variation, chi-square), per-class quality, copies.
* :mod:`aigc_course.reports.model_card` -- a model card per checkpoint, every number
  measured now or read from the checkpoint (``aigc-course card CKPT``).
* :mod:`aigc_course.reports.value` -- measured cost per 1,000 samples, latency budgets,
  business cases with their sensitivity and break-even points.
"""

from aigc_course.reports.audit import (
    AuditResult,
    audit_generator,
    audit_samples,
    audit_table,
    class_balance,
    plot_class_shares,
)
from aigc_course.reports.compare import COLUMNS, compare_models, sample_model, shipped_checkpoints
from aigc_course.reports.model_card import ModelCard, make_model_card

__all__ = ["COLUMNS", "AuditResult", "ModelCard", "audit_generator", "audit_samples",
           "audit_table", "class_balance", "compare_models", "make_model_card",
           "plot_class_shares", "sample_model", "shipped_checkpoints"]
