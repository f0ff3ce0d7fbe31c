"""Strings that are translated at run time but written elsewhere without gettext (status
choices), listed here so ``makemessages`` finds them."""

from django.utils.translation import gettext_noop

SUBMISSION_STATUSES = (
    gettext_noop("received"),
    gettext_noop("queued"),
    gettext_noop("scored"),
    gettext_noop("failed"),
)

#: The gradebook states of an answer (``lti.models.LtiSubmission.Passback``), as the
#: instructor's pages show them.
PASSBACK_STATUSES = (
    gettext_noop("waiting for the score"),
    gettext_noop("queued"),
    gettext_noop("posted"),
    gettext_noop("retrying"),
    gettext_noop("failed"),
    gettext_noop("not sent: the gradebook holds another attempt"),
    gettext_noop("no grade service in the launch"),
)
