"""Celery workers: the app, its queues and the tasks that score, train and sweep.

Start one with ``celery -A workers worker -Q scoring,training,lms``.
"""

from workers.celery_app import app

__all__ = ["app"]
