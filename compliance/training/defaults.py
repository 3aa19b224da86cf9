"""The training every installation starts with: the policy (v1.0), the deployment-authorization
policy course for every role, and a role course for approvers and administrators.

Used by the ``training`` data migration (with historical models) and by demo data and tests
(idempotent: nothing that exists is changed)."""

from __future__ import annotations

import hashlib

from django.apps import apps as global_apps
from django.utils import timezone

from ..people.roles import Role

POLICY_TITLE = "Deployment Authorization Policy"
POLICY_BODY = """\
# Deployment Authorization Policy

## Purpose
Nothing reaches a protected environment (production) unless automated checks passed and designated,
trained approvers who are independent of the change approved it. The CI/CD pipeline then deploys
exactly what was approved.

## Roles
- **Administrators** configure services, environments and approval policies and grant permissions.
- **Engineers** initiate deployments through CI/CD; they never deploy to production directly.
- **Deployment approvers** review the change set and approve or reject; never their own request.
- **Auditors** read everything and change nothing.

## Rules
1. Every change passes unit and integration tests, linting and security scans before a request.
2. Every production deployment needs the approvals its policy names; any rejection rejects.
3. Approvers review the changes and the impact checklist before deciding, and give a reason.
4. Only authorized people and CI service accounts may trigger deployments; main and release
   branches are protected.
5. Every step is logged; administrators review the logs regularly and investigate any
   deployment that was not authorized.

## Training and enforcement
Everyone in the process completes the training for their role before acting and refreshes it
every year. Persistent non-compliance suspends deployment privileges until the training is done.
"""

POLICY_COURSE = {
    "slug": "deployment-authorization-policy",
    "title": "Deployment authorization policy",
    "roles": [str(r) for r in Role],
    "pass_mark": 67,
    "covers_policy": True,
    "content": """\
This course walks you through the **Deployment Authorization Policy**: read the current version on
the policy page, then answer the questions below.

- Production deployments need automated checks *and* the approvals the environment's policy names.
- Engineers request through CI/CD or the portal; the pipeline deploys only after the portal said yes.
- Nobody approves their own request; change authors may be excluded too.
- Every refused action, approval and deployment is evidence for the auditors.
""",
    "questions": [
        ("May you approve a deployment request that you submitted yourself?", ["Yes", "No"], 1),
        (
            "What must happen before a production deployment request can be approved?",
            ["Nothing", "The required automated checks pass", "A chat message to the team"],
            1,
        ),
        (
            "Who deploys an approved change to production?",
            ["The engineer, by hand", "The CI/CD pipeline", "The approver"],
            1,
        ),
    ],
}
ROLE_COURSES = [
    {
        "slug": "deployment-approver",
        "title": "Deployment approver duties",
        "roles": [str(Role.APPROVER)],
        "pass_mark": 100,
        "content": """\
As a **deployment approver** you review the change set (commits, authors, diff), the checks and the
impact checklist before deciding. Reject when in doubt and say why; a rejection needs a comment.
Emergency requests during a freeze need a justification and are flagged for review.
""",
        "questions": [
            ("Is a comment required to reject a request?", ["Yes", "No"], 0),
            ("May you approve a change you authored when the policy excludes change authors?", ["Yes", "No"], 1),
        ],
    },
    {
        "slug": "portal-administrator",
        "title": "Portal administrator duties",
        "roles": [str(Role.ADMINISTRATOR)],
        "pass_mark": 80,
        "content": """\
As an **administrator** you configure environments and approval policies, grant per-environment
permissions, review the audit log regularly, and suspend people after a violation. Being an
administrator never lets you approve deployments.
""",
        "questions": [],
    },
]


def install_default_training(apps=None) -> None:
    """Create the policy v1.0 and the default courses when missing (idempotent)."""
    apps = apps or global_apps
    policy_model = apps.get_model("compliance", "PolicyDocument")
    course_model = apps.get_model("compliance", "TrainingCourse")
    course_role_model = apps.get_model("compliance", "CourseRole")
    question_model = apps.get_model("compliance", "QuizQuestion")
    if not policy_model.objects.exists():
        now = timezone.now()
        policy_model.objects.create(
            title=POLICY_TITLE,
            version="1.0",
            major=1,
            minor=0,
            effective_at=now,
            body=POLICY_BODY,
            sha256=hashlib.sha256(POLICY_BODY.encode("utf-8")).hexdigest(),
            published_at=now,
        )
    for spec in [POLICY_COURSE, *ROLE_COURSES]:
        course, created = course_model.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "title": spec["title"],
                "content": spec["content"],
                "pass_mark": spec["pass_mark"],
                "covers_policy": spec.get("covers_policy", False),
            },
        )
        if not created:
            continue
        for role in spec["roles"]:
            course_role_model.objects.get_or_create(course=course, role=role)
        for position, (text, choices, correct) in enumerate(spec["questions"]):
            question_model.objects.create(
                course=course, position=position, text=text, choices=choices, correct_choice=correct
            )
