"""`manage.py createapitoken USERNAME --role viewer|operator`: prints the user's API token, only it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from jobs.roles import ROLES, grant_role


class Command(BaseCommand):
    help = (
        "Create USERNAME if needed (without a password: it signs in with the token), make ROLE its "
        "API role and print its token. An existing token is kept, so scripts can run this again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role", required=True, choices=sorted(ROLES), help="viewers read; operators also act"
        )

    def handle(self, *args: Any, username: str, role: str, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user_model._meta.get_field(user_model.USERNAME_FIELD).clean(username, None)
        except ValidationError as exc:
            raise CommandError(f"invalid username {username!r}: {' '.join(exc.messages)}") from None
        with transaction.atomic():
            user, _ = user_model.objects.get_or_create(
                **{user_model.USERNAME_FIELD: username}, defaults={"password": make_password(None)}
            )
            grant_role(user, role)
            token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
