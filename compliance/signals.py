"""Keep ``RoleAssignment`` in step with group membership, whichever side of the relation changed
(role changes of administrators and approvers become ``PrivilegeChange`` records there), and record
the heartbeat of periodic jobs."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed

from .monitoring import jobs
from .people.roles import ROLE_NAMES
from .training.services import sync_role_assignments


def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    user_model = get_user_model()
    if not reverse:  # user.groups.add/remove/clear/set
        if action in {"post_add", "post_remove", "post_clear"}:
            sync_role_assignments(user=instance)
        return
    # group.user_set.add/remove/clear/set: ``instance`` is the group
    if instance.name not in ROLE_NAMES:
        return
    if action == "pre_clear":
        instance._role_members_before_clear = list(instance.user_set.values_list("pk", flat=True))
        return
    if action in {"post_add", "post_remove"}:
        ids = pk_set or ()
    elif action == "post_clear":
        ids = getattr(instance, "_role_members_before_clear", ())
    else:
        return
    for user in user_model.objects.filter(pk__in=list(ids)):
        sync_role_assignments(user=user)


def connect() -> None:
    jobs.connect()
    m2m_changed.connect(
        _groups_changed, sender=get_user_model().groups.through, dispatch_uid="compliance.role_assignments"
    )
