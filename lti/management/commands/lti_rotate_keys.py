"""Rotate the tool's signing key: ``manage.py lti_rotate_keys``. Run it from cron, e.g. monthly."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from lti import keys


class Command(BaseCommand):
    help = (
        "Create a new signing key. The previous key stays in the JWKS for "
        "SCOREBRIDGE_LTI_KEY_GRACE_DAYS days; keys past that are deactivated."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        new_key, retired = keys.rotate()
        self.stdout.write(f"new signing key kid={new_key}")
        self.stdout.write(
            f"{retired} key(s) retired; superseded keys stay published for "
            f"{settings.LTI_KEY_GRACE_DAYS} day(s)"
        )
