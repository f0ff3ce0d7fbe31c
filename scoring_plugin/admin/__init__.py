"""Django admin, one module per purpose: items (import with preview, training, roll back),
model versions (reports, activation, distillation, merging), submissions (review, export,
rescoring), and the rest (scored answers, the audit log). Importing the package registers
every admin class with the default site."""

from scoring_plugin.admin import item_admin, others, submission_admin, version_admin

__all__ = ["item_admin", "others", "submission_admin", "version_admin"]
