"""Factories build state through the real services wherever a service exists."""

from __future__ import annotations

import hashlib
import itertools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm, remove_perm

from compliance.models import TrainingCourse
from compliance.people.roles import Role
from compliance.training import services as compliance_services
from compliance.training.defaults import install_default_training
from deployments.choices import Tier
from deployments.gate import services
from deployments.models import Service

_counter = itertools.count()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or ():
            self.groups.add(Group.objects.get(name=str(role)))
        if extracted:
            self.save()

    @factory.post_generation
    def trained(self, create, extracted, **kwargs):
        # People who act (engineers, approvers) are trained unless the test says trained=False.
        if extracted is None:
            extracted = self.groups.filter(name__in=[str(Role.ENGINEER), str(Role.APPROVER)]).exists()
        if extracted:
            train(self)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    name = factory.Sequence(lambda n: f"service-{n}")
    repository = factory.LazyAttribute(lambda o: f"acme/{o.name}")


def make_environment(*, service=None, name="production", tier=Tier.STAGING, **policy):
    service = service or ServiceFactory()
    return services.create_environment(actor=None, service=service, name=name, tier=tier, **policy)


def sha(label: str | None = None) -> str:
    label = label if label is not None else f"commit-{next(_counter)}"
    return hashlib.sha1(label.encode()).hexdigest()


def grant(user_or_group, action: str, environment) -> None:
    assign_perm(f"deployments.{action}_deployment", user_or_group, environment)


def revoke(user_or_group, action: str, environment) -> None:
    remove_perm(f"deployments.{action}_deployment", user_or_group, environment)


def train(user, courses=None) -> list:
    """Complete ``courses`` (default: every active course) through the real service: the quiz with
    the right answers, then the attestation. Installs the default policy and courses if missing."""
    install_default_training()
    attestations = []
    for course in courses or TrainingCourse.objects.filter(is_active=True).prefetch_related("questions"):
        answers = {str(q.pk): q.correct_choice for q in course.questions.all()}
        attestations.append(
            compliance_services.complete_course(actor=user, course=course, answers=answers, confirmed=True)
        )
    return attestations


def engineer(environment=None, **kwargs):
    user = UserFactory(roles=[Role.ENGINEER], **kwargs)
    if environment is not None:
        grant(user, "request", environment)
    return user


def approver(environment=None, **kwargs):
    user = UserFactory(roles=[Role.APPROVER], **kwargs)
    if environment is not None:
        grant(user, "approve", environment)
    return user


def full_checklist(request) -> dict[str, bool]:
    return {item: True for item in request.policy_snapshot.get("impact_checklist", [])}


def approve(request, user, **kwargs):
    kwargs.setdefault("checklist", full_checklist(request))
    return services.approve_request(actor=user, request=request, **kwargs)
