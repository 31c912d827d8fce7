"""API token authentication that also reads the caller's role (see RolePermission)."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from jobs import sql
from jobs.roles import ACT_PERMISSION, READ_PERMISSION

ROLE_PERMISSIONS = (READ_PERMISSION, ACT_PERMISSION)

# The token, its user, and which of the role permissions the user holds as ModelBackend's
# has_perm() decides it: all of them for a superuser, else those granted to the user or to one
# of the user's groups. Planned once per connection (sql.fetch prepares it): as an ORM query
# with EXISTS subqueries, planning alone took 4 ms, more than the request's own work.
_TOKEN_WITH_GRANTS = """
WITH wanted AS (
  SELECT p.id, ct.app_label || '.' || p.codename AS name
  FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
  WHERE ct.app_label || '.' || p.codename = ANY(%(permissions)s::text[])
), held AS (
  SELECT up.permission_id FROM auth_user_user_permissions up
  JOIN authtoken_token t ON t.user_id = up.user_id WHERE t.key = %(key)s
  UNION
  SELECT gp.permission_id FROM auth_group_permissions gp
  JOIN auth_user_groups ug ON ug.group_id = gp.group_id
  JOIN authtoken_token t ON t.user_id = ug.user_id WHERE t.key = %(key)s
)
SELECT t.created AS token_created, {user_columns},
       ARRAY(SELECT w.name FROM wanted w WHERE u.is_superuser OR w.id IN (SELECT permission_id FROM held))
         AS granted
FROM authtoken_token t JOIN {user_table} u ON u.id = t.user_id
WHERE t.key = %(key)s
"""


@functools.cache
def _token_statement() -> str:
    """_TOKEN_WITH_GRANTS for the user model, built once: its text is also its prepared name."""
    user_model = get_user_model()
    return _TOKEN_WITH_GRANTS.format(
        user_columns=", ".join(f'u."{field.column}"' for field in user_model._meta.concrete_fields),
        user_table=f'"{user_model._meta.db_table}"',
    )


class RoleTokenAuthentication(TokenAuthentication):
    """DRF's token authentication that reads the caller's role in the same statement.

    The token lookup and has_perm() (user permissions, then group permissions) were three
    round trips on every API call, more than the job's own INSERT; this is one.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        rows = sql.fetch(_token_statement(), {"key": key, "permissions": list(ROLE_PERMISSIONS)})
        if not rows:
            raise AuthenticationFailed(_("Invalid token."))
        row = rows[0]
        (user,) = sql.models_from_rows(get_user_model(), rows)
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        user.taskforge_grants = {name: name in row["granted"] for name in ROLE_PERMISSIONS}
        token = Token.from_db(
            connection.alias, ["key", "user_id", "created"], [key, user.pk, row["token_created"]]
        )
        return user, token
