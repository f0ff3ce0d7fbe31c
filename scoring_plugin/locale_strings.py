"""Strings that are translated at run time but written elsewhere without gettext (status
choices), listed here so ``makemessages`` finds them."""

from django.utils.translation import gettext_noop

SUBMISSION_STATUSES = (
    gettext_noop("received"),
    gettext_noop("queued"),
    gettext_noop("scored"),
    gettext_noop("failed"),
)
