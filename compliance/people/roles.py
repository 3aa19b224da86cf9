"""The four roles of the written policy, as Django groups.

Global roles are groups; *where* an engineer may request or an approver may approve is an
object permission on the environment (see ``deployments.gate.permissions``).
"""

from __future__ import annotations

from enum import StrEnum

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions


class Role(StrEnum):
    ADMINISTRATOR = "Administrators"
    ENGINEER = "Engineers"
    APPROVER = "Deployment Approvers"
    AUDITOR = "Auditors"


ROLE_NAMES = frozenset(str(role) for role in Role)

ROLE_LABELS = {
    Role.ADMINISTRATOR: "administrator",
    Role.ENGINEER: "engineer",
    Role.APPROVER: "deployment approver",
    Role.AUDITOR: "auditor",
}


def has_role(user, role: Role) -> bool:
    """True when the active ``user`` belongs to the group of ``role``."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    cache = getattr(user, "_portal_role_names", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._portal_role_names = cache
    return str(role) in cache


def roles_of(user) -> list[Role]:
    return [role for role in Role if has_role(user, role)]


def _active(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def administers(user) -> bool:
    """An active superuser or administrator: configures the portal (and sends reminders, lifts
    suspensions, manages tokens)."""
    return _active(user) and (user.is_superuser or has_role(user, Role.ADMINISTRATOR))


def oversees_everything(user) -> bool:
    """An active superuser, administrator or auditor: reads every record (monitoring, the training
    matrix, reports, every request)."""
    return administers(user) or has_role(user, Role.AUDITOR)


# --- the model permissions each role's group holds ---------------------------------------------
# Evidence is never deleted by anyone, and audit entries never changed: no role gets those.
EVIDENCE_MODELS = {
    "deployments.deploymentrequest",
    "deployments.approval",
    "deployments.requestevent",
    "deployments.refusal",
    "deployments.execution",
    "deployments.emergencyreview",
    "deployments.evidencesample",
    "deployments.failedchangeflag",
    "compliance.suspension",
    "compliance.attestation",
    "compliance.quizattempt",
    "compliance.roleassignment",
    "compliance.trainingreminder",
    "compliance.policydocument",
    "compliance.reportexport",
}
READ_ONLY_FOR_ADMINS = {"auditlog.logentry", "auth.permission", "contenttypes.contenttype"}
THIRD_PARTY_APPS = ("auditlog", "auth", "django_celery_beat", "axes")
# The portal's own apps: compliance, deployments and every integration app installed under it.
PORTAL_PACKAGES = ("compliance", "deployments")


def own_app_labels() -> tuple[str, ...]:
    """The labels of the portal's own installed apps: compliance, deployments and every integration
    app installed under deployments."""
    from django.apps import apps as installed

    return tuple(config.label for config in installed.get_app_configs()
                 if config.name.split(".")[0] in PORTAL_PACKAGES)


def portal_app_labels() -> tuple[str, ...]:
    return (*own_app_labels(), *THIRD_PARTY_APPS)


ENGINEER_AND_APPROVER_VIEWS = {
    "deployments.service",
    "deployments.environment",
    "deployments.approvalpolicy",
    "deployments.freezewindow",
    "deployments.deploymentrequest",
}


def _wanted(role: Role, label: str, action: str) -> bool:
    if role == Role.AUDITOR:
        return action == "view"
    if role in (Role.ENGINEER, Role.APPROVER):
        return action == "view" and label in ENGINEER_AND_APPROVER_VIEWS
    # administrators configure everything, but change no evidence and delete no evidence
    if label in READ_ONLY_FOR_ADMINS:
        return action == "view"
    if label in EVIDENCE_MODELS:
        adds = {"compliance.suspension", "compliance.policydocument"}
        return action in {"view", "add"} if label in adds else action == "view"
    return True


def sync_role_groups(apps=None, verbosity: int = 0) -> None:
    """Create the four role groups and give each exactly its model permissions (idempotent).

    Called from a data migration (with historical ``apps``) and after every ``migrate``, so new
    models get their role permissions without another data migration.
    """
    apps = apps or global_apps
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=verbosity)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    permissions = list(
        permission_model.objects.filter(content_type__app_label__in=portal_app_labels()).select_related("content_type")
    )
    for role in Role:
        group, _ = group_model.objects.get_or_create(name=str(role))
        wanted = []
        for perm in permissions:
            action = perm.codename.split("_", 1)[0]
            label = f"{perm.content_type.app_label}.{perm.content_type.model}"
            if action in {"add", "change", "delete", "view"} and _wanted(role, label, action):
                wanted.append(perm)
        group.permissions.set(wanted)
