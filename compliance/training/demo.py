"""Training demo data: policy v1.0 and v2.0, the default courses, attestations in every state and
one person suspended for lapsed training. Called by ``deployments.demo`` before any request is
created (the people who act in the demo requests must be trained). Idempotent."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from ..people.roles import Role
from . import enforcement, services
from .defaults import POLICY_BODY, POLICY_TITLE, install_default_training
from .models import Attestation, PolicyDocument, RoleAssignment, TrainingCourse

POLICY_V2_BODY = POLICY_BODY.replace(
    "## Training and enforcement",
    "## Emergency deployments\nDuring a freeze only emergency requests with a written justification may be "
    "approved; they need extra approvals and are flagged for review.\n\n## Training and enforcement",
)
# Extra people showing the other training states (password for all: demo-training-pass).
TRAINING_PEOPLE = [
    ("grace", Role.ENGINEER, "Grace Stale"),  # attested policy v1.0; v2.0's grace period just ended
    ("heidi", Role.APPROVER, "Heidi Expired"),  # approver course expired two days ago
    ("ivan", Role.ENGINEER, "Ivan New"),  # gained the role three days ago, never trained: due
    ("mallory", Role.APPROVER, "Mallory Suspended"),  # training lapsed long ago: suspended
]
TRAINING_PASSWORD = "demo-training-pass"


def _complete(user, course, when):
    answers = {str(q.pk): q.correct_choice for q in course.questions.all()}
    return services.complete_course(actor=user, course=course, answers=answers, confirmed=True, now=when)


def _people(users: dict) -> dict:
    user_model = get_user_model()
    people = dict(users)
    for username, role, full_name in TRAINING_PEOPLE:
        first, last = full_name.split(" ", 1)
        person, created = user_model.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"}
        )
        if created:
            person.set_password(TRAINING_PASSWORD)
            person.save()
        person.groups.add(Group.objects.get(name=str(role)))
        people[username] = person
    return people


def load_training_demo(users: dict) -> dict:
    """Give the demo people training in every state; returns the extra logins."""
    logins = {username: (TRAINING_PASSWORD, str(role)) for username, role, _ in TRAINING_PEOPLE}
    install_default_training()
    people = _people(users)
    if PolicyDocument.objects.filter(major__gte=2).exists():
        return logins
    now = timezone.now()
    day = timedelta(days=1)
    # The demo story starts two years ago: v1.0 was in force then, people held their roles.
    PolicyDocument.objects.filter(major=1, minor=0, attestations__isnull=True).update(effective_at=now - 800 * day)
    started = {username: now - 400 * day for username in people}
    started["ivan"] = now - 3 * day
    for username, since in started.items():
        RoleAssignment.objects.filter(user=people[username], ended_at__isnull=True).update(assigned_at=since)
    admin = people["admin"]
    services.publish_policy(
        actor=admin, title=POLICY_TITLE, version="2.0", body=POLICY_V2_BODY, effective_at=now - 33 * day
    )
    policy_course = TrainingCourse.objects.get(slug="deployment-authorization-policy")
    approver_course = TrainingCourse.objects.get(slug="deployment-approver")
    admin_course = TrainingCourse.objects.get(slug="portal-administrator")

    # current: everyone who acts in the demo requests attested v2.0 a month ago
    admins = [name for name in ("admin", "otto") if name in people]  # otto: the second administrator
    for username in (*admins, "alice", "bob", "carol", "dave", "erin", "frank", "heidi"):
        _complete(people[username], policy_course, now - 30 * day)
    for username in ("carol", "dave"):
        _complete(people[username], approver_course, now - 30 * day)
    for username in admins:
        _complete(people[username], admin_course, now - 30 * day)
    # expiring soon: erin's approver course ends in nine days
    _complete(people["erin"], approver_course, now - 356 * day)
    # expired: heidi's approver course ended two days ago
    _complete(people["heidi"], approver_course, now - 367 * day)
    # stale: grace attested policy v1.0; v2.0's grace period ended three days ago
    _complete(people["grace"], policy_course, now - 100 * day)
    # suspended: mallory's training lapsed months ago; the enforcement job suspends her
    _complete(people["mallory"], policy_course, now - 500 * day)
    _complete(people["mallory"], approver_course, now - 500 * day)
    enforcement.suspend_lapsed_people(actor=admin, now=now)
    assert Attestation.objects.filter(user=people["ivan"]).count() == 0  # never done: due
    return logins
