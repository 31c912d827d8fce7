"""Who may call the API (DESIGN.md §10): the global DRF permission, so new endpoints are guarded
unless they opt out, as /healthz and /readyz do."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from jobs.roles import ACT_PERMISSION, READ_PERMISSION

logger = logging.getLogger("taskforge.api")


class RolePermission(BasePermission):
    """Reads need the viewer permission, everything else the operator one.

    An anonymous caller gets 401 not_authenticated (DRF raises it when no authenticator
    succeeded); a signed-in one without the permission gets 403 permission_denied.
    """

    message = "Your role does not allow this request."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.TASKFORGE.api_auth:
            return True
        user = request.user
        if not user.is_authenticated:
            return False
        needed = READ_PERMISSION if request.method in SAFE_METHODS else ACT_PERMISSION
        grants = getattr(user, "taskforge_grants", None)  # set by authentication.RoleTokenAuthentication
        return grants[needed] if grants is not None else user.has_perm(needed)


def warn_if_api_auth_off() -> None:
    """Called by the WSGI/ASGI entry points, so an open API never goes unnoticed in the logs."""
    if not settings.TASKFORGE.api_auth:
        logger.warning(
            "TASKFORGE_API_AUTH=off: the HTTP API answers anyone; use this only for local experiments"
        )
