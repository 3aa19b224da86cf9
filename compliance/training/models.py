"""Training evidence: policy versions, courses with their quizzes, role assignments, quiz attempts,
attestations and reminders."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from ..choices import ReminderKind
from ..people.roles import Role

__all__ = [
    "Attestation",
    "CourseRole",
    "PolicyDocument",
    "QuizAttempt",
    "QuizQuestion",
    "RoleAssignment",
    "TrainingCourse",
    "TrainingReminder",
]


VERSION_REGEX = r"^[0-9]{1,4}\.[0-9]{1,4}$"


class PolicyDocument(models.Model):
    """One published version ("major.minor") of the written deployment authorization policy.

    Published versions are immutable evidence: the SHA-256 of the Markdown text is stored so an
    attestation proves exactly which text a person agreed to. A new *major* version makes
    attestations of older versions stale once ``PORTAL_POLICY_GRACE_DAYS`` after it takes effect.
    """

    title = models.CharField(max_length=200)
    version = models.CharField(max_length=9, help_text='"major.minor", e.g. 2.1')
    major = models.PositiveIntegerField(editable=False)
    minor = models.PositiveIntegerField(editable=False)
    effective_at = models.DateTimeField(help_text="When this version takes effect.")
    body = models.TextField(help_text="Markdown. Rendered with HTML sanitised.")
    sha256 = models.CharField(max_length=64, editable=False)
    published_at = models.DateTimeField(editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-major", "-minor"]
        get_latest_by = "effective_at"
        constraints = [
            models.UniqueConstraint(
                fields=["major", "minor"],
                name="policydocument_unique_version",
                violation_error_message="This policy version already exists.",
            ),
            models.CheckConstraint(
                condition=Q(version__regex=VERSION_REGEX),
                name="policydocument_version_format",
                violation_error_message='The version must look like "major.minor", e.g. 2.1.',
            ),
            models.CheckConstraint(
                condition=~Q(body=""),
                name="policydocument_body_required",
                violation_error_message="A policy document needs a text.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class TrainingCourse(models.Model):
    """A course people in some roles must complete, then refresh every ``validity_days``."""

    slug = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    content = models.TextField(help_text="Markdown. Rendered with HTML sanitised.")
    validity_days = models.PositiveIntegerField(default=365, help_text="An attestation expires after this many days.")
    due_days = models.PositiveIntegerField(
        default=14, help_text="Days a person has after gaining a role to complete the course."
    )
    pass_mark = models.PositiveSmallIntegerField(default=80, help_text="Quiz pass mark in percent (if a quiz exists).")
    covers_policy = models.BooleanField(
        default=False,
        help_text="Teaches the policy text itself: attestations go stale when a new major policy version is "
        "published (after the grace period).",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(validity_days__gt=0),
                name="trainingcourse_validity_positive",
                violation_error_message="A course must stay valid for at least one day.",
            ),
            models.CheckConstraint(
                condition=Q(pass_mark__gte=0) & Q(pass_mark__lte=100),
                name="trainingcourse_pass_mark_percent",
                violation_error_message="The pass mark is a percentage between 0 and 100.",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class CourseRole(models.Model):
    """``course`` is required for everyone holding ``role``."""

    course = models.ForeignKey(TrainingCourse, on_delete=models.CASCADE, related_name="course_roles")
    role = models.CharField(max_length=64, choices=[(r.value, r.value) for r in Role])

    class Meta:
        ordering = ["course", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "role"],
                name="courserole_unique",
                violation_error_message="This course is already required for this role.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.course} for {self.role}"


class QuizQuestion(models.Model):
    """A multiple-choice question of a course's quiz; ``correct_choice`` indexes ``choices``."""

    course = models.ForeignKey(TrainingCourse, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveSmallIntegerField(default=0)
    text = models.CharField(max_length=500)
    choices = models.JSONField(help_text='A list of answers, e.g. ["Yes", "No"].')
    correct_choice = models.PositiveSmallIntegerField(help_text="Index of the right answer, counting from 0.")

    class Meta:
        ordering = ["course", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(text=""),
                name="quizquestion_text_required",
                violation_error_message="A question needs a text.",
            )
        ]

    def __str__(self) -> str:
        return self.text


class RoleAssignment(models.Model):
    """When a person gained (and lost) a role: the start of their training due date.

    Kept in step with group membership by the ``m2m_changed`` signal on ``User.groups``.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=64, choices=[(r.value, r.value) for r in Role])
    assigned_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "role", "-assigned_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(ended_at__isnull=True),
                name="roleassignment_one_open_per_role",
                violation_error_message="This person already holds this role.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} since {self.assigned_at:%Y-%m-%d}"


class QuizAttempt(models.Model):
    """Every quiz attempt, passed or failed, as evidence."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="quiz_attempts")
    course = models.ForeignKey(TrainingCourse, on_delete=models.PROTECT, related_name="quiz_attempts")
    score = models.PositiveSmallIntegerField(help_text="Percent of right answers.")
    passed = models.BooleanField()
    answers = models.JSONField(default=dict)
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["-attempted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__lte=100),
                name="quizattempt_score_percent",
                violation_error_message="A score is a percentage.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.score}% on {self.course} ({'passed' if self.passed else 'failed'})"


class Attestation(models.Model):
    """A person attested, at ``attested_at`` from ``ip_address``, to ``statement`` after completing
    ``course``: evidence of training, naming the policy version and its hash. Never changed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="attestations")
    course = models.ForeignKey(TrainingCourse, on_delete=models.PROTECT, related_name="attestations")
    policy = models.ForeignKey(PolicyDocument, on_delete=models.PROTECT, related_name="attestations")
    policy_version = models.CharField(max_length=9)
    policy_major = models.PositiveIntegerField()
    policy_sha256 = models.CharField(max_length=64)
    course_sha256 = models.CharField(max_length=64)
    statement = models.TextField()
    quiz_score = models.PositiveSmallIntegerField(null=True, blank=True)
    attested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-attested_at"]
        indexes = [models.Index(fields=["user", "course", "-attested_at"], name="attestation_user_course")]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("attested_at")),
                name="attestation_expires_after_attested",
                violation_error_message="An attestation must expire after it was given.",
            ),
            models.CheckConstraint(
                condition=~Q(statement=""),
                name="attestation_statement_required",
                violation_error_message="An attestation needs its statement.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} attested {self.course} (policy v{self.policy_version}) on {self.attested_at:%Y-%m-%d}"


class TrainingReminder(models.Model):
    """A reminder sent (or claimed for sending): one per person, course, kind and period.

    The unique constraint is what makes the reminder job safe to run twice or in parallel.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_reminders")
    course = models.ForeignKey(TrainingCourse, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    period = models.CharField(max_length=64, help_text="The deadline and period this reminder is for.")
    sent_at = models.DateTimeField()
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "course", "kind", "period"],
                name="trainingreminder_once_per_period",
                violation_error_message="This reminder was already sent for this period.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} reminder to {self.user} for {self.course} ({self.period})"
