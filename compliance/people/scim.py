"""SCIM 2.0 provisioning (RFC 7643/7644) through django-scim2: the identity provider creates, updates
and deactivates people and manages group membership at ``/scim/v2/``.

- Authentication: ``Authorization: Bearer <PORTAL_SCIM_TOKEN>`` (constant-time compare); without the
  setting SCIM is off (every request answers 401). The requests act as the ``scim-provisioner``
  service account in the audit trail.
- People are never deleted: ``DELETE /Users/<id>`` deactivates the account (its approvals and audit
  entries name it). Passwords sent by the identity provider are ignored (people sign in through it).
- Group membership: adding a member to a privileged role (Administrators, Deployment Approvers)
  becomes a pending four-eyes access change that a portal administrator approves; every other
  membership change, and every removal, takes effect at once. The role groups cannot be renamed or
  deleted through SCIM.
"""

from __future__ import annotations

import hmac
import logging

from auditlog.context import set_actor
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django_scim import exceptions
from django_scim.adapters import SCIMGroup, SCIMUser
from django_scim.middleware import SCIMAuthCheckMiddleware

from ..errors import RuleViolation
from . import access_changes, privileges
from .roles import ROLE_NAMES
from .scim_filters import PortalGroupFilterQuery

logger = logging.getLogger(__name__)

PROVISIONER_USERNAME = "scim-provisioner"


def provisioner():
    """The account SCIM requests act as in the audit trail; it cannot sign in and never approves."""
    user, _ = get_user_model().objects.get_or_create(
        username=PROVISIONER_USERNAME,
        defaults={"is_active": False, "is_service_account": True, "first_name": "SCIM", "last_name": "provisioning"},
    )
    return user


class SCIMBearerTokenAuth(SCIMAuthCheckMiddleware):
    """django-scim2's auth check (its ``AUTH_CHECK_MIDDLEWARE``): a valid bearer token or 401."""

    def __call__(self, request, *args, **kwargs):
        token = settings.PORTAL_SCIM_TOKEN
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if not token or scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(),
                                                                               token.encode()):
            logger.warning("SCIM request refused: %s", "no token configured" if not token else "wrong bearer token")
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Bearer realm="deployment-portal-scim"'
            return response
        request.user = provisioner()
        with set_actor(request.user):
            return super().__call__(request, *args, **kwargs)


def _user_by_id(value) -> object:
    try:
        return get_user_model().objects.get(pk=int(value), is_service_account=False)
    except (TypeError, ValueError, get_user_model().DoesNotExist):
        raise exceptions.BadRequestError(f"No such user: {value}") from None


class PortalSCIMUser(SCIMUser):
    id_field = "id"

    def to_dict(self):
        # The portal keeps no externalId (django-scim2's model mixin would add columns for it).
        if not hasattr(self.obj, "scim_external_id"):
            self.obj.scim_external_id = ""
        data = super().to_dict()
        data.pop("externalId", None)
        return data

    @property
    def groups(self):
        adapter = PortalSCIMGroup
        return [{"value": str(group.pk), "$ref": adapter(group, self.request).location, "display": group.name}
                for group in self.obj.groups.all()]

    def from_dict(self, d):
        d = {key: value for key, value in d.items() if key != "password"}  # people sign in through the IdP
        super().from_dict(d)
        if not self.obj.username:
            raise exceptions.BadRequestError("userName is required")

    def save(self):
        if self.obj.pk is None:
            self.obj.set_unusable_password()
        elif self.obj.is_service_account:
            raise exceptions.BadRequestError("Service accounts are not provisioned through SCIM.")
        self.obj.save()

    def delete(self):
        # People are deactivated, never deleted (their approvals and audit entries name them).
        if self.obj.is_service_account:
            raise exceptions.BadRequestError("Service accounts are not provisioned through SCIM.")
        self.obj.is_active = False
        self.obj.save(update_fields=["is_active"])


class PortalSCIMGroup(SCIMGroup):
    id_field = "id"
    ATTR_MAP = PortalGroupFilterQuery.attr_map

    def to_dict(self):
        # The portal keeps no externalId (django-scim2's model mixin would add columns for it).
        if not hasattr(self.obj, "scim_external_id"):
            self.obj.scim_external_id = ""
        data = super().to_dict()
        data.pop("externalId", None)
        return data

    @property
    def members(self):
        return [{"value": str(user.pk), "$ref": PortalSCIMUser(user, self.request).location,
                 "display": user.get_full_name() or user.username}
                for user in self.obj.user_set.filter(is_service_account=False)]

    def from_dict(self, d):
        name = (d.get("displayName") or "").strip()
        if not name:
            raise exceptions.BadRequestError("displayName is required")
        if self.obj.pk is not None and self.obj.name in ROLE_NAMES and name != self.obj.name:
            raise exceptions.BadRequestError(f"The {self.obj.name} role cannot be renamed.")
        self.obj.name = name
        self._members = [m.get("value") for m in d["members"]] if isinstance(d.get("members"), list) else None

    def save(self):
        self.obj.save()
        if getattr(self, "_members", None) is not None:
            self._replace_members(self._members)

    def delete(self):
        if self.obj.name in ROLE_NAMES:
            raise exceptions.BadRequestError(f"The {self.obj.name} role cannot be deleted.")
        self.obj.delete()

    # --- membership -----------------------------------------------------------------------------

    def _add(self, user) -> None:
        if self.obj.name in privileges.WATCHED_ROLES:
            try:
                access_changes.request_access_change(
                    actor=None, grant=access_changes.role_grant(user, self.obj.name), via="scim",
                    reason="Requested by the identity provider (SCIM group membership).",
                )
            except RuleViolation as exc:
                if exc.code not in {"already_pending", "already_held"}:  # the IdP retries: idempotent
                    raise exceptions.BadRequestError(exc.message) from None
            return
        self.obj.user_set.add(user)

    def _replace_members(self, values) -> None:
        wanted = {_user_by_id(value).pk: _user_by_id(value) for value in values}
        for user in self.obj.user_set.filter(is_service_account=False).exclude(pk__in=list(wanted)):
            self.obj.user_set.remove(user)
        held = set(self.obj.user_set.values_list("pk", flat=True))
        for pk, user in wanted.items():
            if pk not in held:
                self._add(user)

    def handle_add(self, path, value, operation):
        if path is None or path.first_path != ("members", None, None):
            raise exceptions.NotImplementedError("Only members can be added to a group.")
        for member in value or []:
            self._add(_user_by_id(member.get("value")))

    def handle_remove(self, path, value, operation):
        if path is None or path.first_path != ("members", None, None):
            raise exceptions.NotImplementedError("Only members can be removed from a group.")
        for member in value or []:
            self.obj.user_set.remove(_user_by_id(member.get("value")))

    def handle_replace(self, path, value, operation):
        if path is not None and path.first_path == ("members", None, None):
            self._replace_members([member.get("value") for member in value or []])
            return
        if path is not None and path.first_path == ("displayName", None, None):
            self.from_dict({"displayName": value if isinstance(value, str) else ""})
            self._members = None
            self.save()
            return
        raise exceptions.NotImplementedError("Only members and displayName can be replaced.")


def exclude_kwargs_getter(model):
    """django-scim2's ``GET_EXTRA_MODEL_EXCLUDE_KWARGS_GETTER``: lists leave out service accounts (CI
    bots, the portal itself), which are not provisioned."""
    def exclude(request, *args, **kwargs):
        return {"is_service_account": True} if model is get_user_model() else {}

    return exclude
