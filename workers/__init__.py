"""Celery workers: the tasks that score, train, merge, distill and sweep.

Start one with ``celery -A workers worker -Q scoring,training,lms``. The app, queues and routes
live in :mod:`queueing`; the management commands here (``train_items``, ``model_cards``) run
ML work in the calling process.
"""

from queueing.app import app

__all__ = ["app"]
