"""Keep ``RoleAssignment`` in step with group membership, whichever side of the relation changed
(role changes of administrators and approvers become ``PrivilegeChange`` records there), and record
the heartbeat of periodic jobs."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_save, pre_save

from .monitoring import jobs
from .people import four_eyes, privileges
from .people.privileges import WATCHED_ROLES
from .people.roles import ROLE_NAMES
from .training.services import sync_role_assignments


def _guard_role_grants(instance, reverse: bool, pk_set) -> None:
    """A person adding someone to a watched role outside an approved access change is refused."""
    if reverse:
        if instance.name in WATCHED_ROLES:
            for user in get_user_model().objects.filter(pk__in=list(pk_set or ())):
                four_eyes.guard(privilege=f"the {instance.name} role", subject=user, group=instance.name)
        return
    for name in Group.objects.filter(pk__in=list(pk_set or ()), name__in=WATCHED_ROLES).values_list("name", flat=True):
        four_eyes.guard(privilege=f"the {name} role", subject=instance, group=name)


FLAG_WORDS = {"is_staff": "staff status", "is_superuser": "superuser status"}


def _flags_about_to_change(sender, instance, raw=False, update_fields=None, **kwargs):
    """Staff or superuser granted by a person outside an approved access change is refused."""
    instance._portal_flags_granted = []
    set_now = [flag for flag in FLAG_WORDS
               if getattr(instance, flag) and (update_fields is None or flag in update_fields)]
    if raw or not set_now:
        return  # most saves (sign-ins, profile edits) set no flag: no query
    before = {}
    if instance.pk is not None:
        before = sender.objects.filter(pk=instance.pk).values(*FLAG_WORDS).first() or {}
    for flag in set_now:
        if not before.get(flag):
            four_eyes.guard(privilege=FLAG_WORDS[flag], subject=instance if instance.pk else None)
            instance._portal_flags_granted.append(flag)


def _flags_changed(sender, instance, raw=False, **kwargs):
    """Record every staff or superuser grant that was let through: an approved access change (actor:
    its approver) or the system path (``createsuperuser``, the demo data; actor: the system)."""
    granted = getattr(instance, "_portal_flags_granted", ())
    instance._portal_flags_granted = []
    if granted and not raw:
        privileges.flags_changed(actor=privileges.current_actor(), subject=instance,
                                 changes={flag: (False, True) for flag in granted})


def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    user_model = get_user_model()
    if action == "pre_add":
        _guard_role_grants(instance, reverse, pk_set)
        return
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
    pre_save.connect(_flags_about_to_change, sender=get_user_model(), dispatch_uid="compliance.four_eyes_flags")
    post_save.connect(_flags_changed, sender=get_user_model(), dispatch_uid="compliance.flags_recorded")
