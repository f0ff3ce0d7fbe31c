"""Create (or reset) an admin account and an API token for it, for a one-machine install."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from scoring_plugin.tokens import ApiToken

TOKEN_NAME = "ensure_admin"


class Command(BaseCommand):
    help = (
        "Create the admin user if missing (a random password is printed), with an API token. "
        "Tokens are stored hashed, so a token is printed only when it is made."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", help="default: keep an existing one, or a random one")
        parser.add_argument(
            "--new-password", action="store_true", help="set a new random password and print it"
        )
        parser.add_argument(
            "--new-token",
            action="store_true",
            help="replace this command's API token for the user with a new one and print it",
        )

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = str(options["username"])
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        password = options.get("password")
        if created or password or options.get("new_password"):
            password = str(password or secrets.token_urlsafe(12))
            user.set_password(password)
            user.save()
        existing = ApiToken.objects.filter(user=user, name=TOKEN_NAME)
        if options.get("new_token") or not existing.exists():
            existing.delete()
            _, key = ApiToken.create_for(user, TOKEN_NAME)
            shown_token = key
        else:
            shown_token = "(unchanged; stored hashed, run with --new-token for a new one)"
        shown = password if password else "(unchanged)"
        self.stdout.write(
            f"admin user: {username}\nadmin password: {shown}\napi token: {shown_token}"
        )
