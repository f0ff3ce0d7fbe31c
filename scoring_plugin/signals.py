"""Signals other apps listen to (the LTI app posts grades when an answer is scored)."""

from django.dispatch import Signal

# Sent after the transaction that stored a submission's final state commits (one answer).
# Arguments: submission_id (str), status ("scored" or "failed").
submission_finished = Signal()

# Sent after the transaction that stored the final states of a scoring worker's batch commits
# (one signal per batch, so a listener reads the batch with one query). Arguments: statuses
# (dict: submission id -> "scored", "failed", or "waiting": an answer to an item with no active
# model, which waits for a human score).
submissions_finished = Signal()

# Sent after the transaction that gave a submission an instructor's score (or removed it)
# commits, wherever it was made (LTI page, admin, API). Arguments: submission_id (str),
# score (int or None).
submission_reviewed = Signal()
