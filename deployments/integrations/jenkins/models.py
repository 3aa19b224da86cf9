"""What the Jenkins integration keeps: which Jenkins jobs may deploy to which environment, and the
build (with the ``input`` step it waits on) each Jenkins request decides."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

job_path_validator = RegexValidator(
    r"^[^/\s][^/]*(/[^/\s][^/]*)*$", "A job path is the job's names separated by '/', e.g. payments/deploy."
)


class JenkinsJob(models.Model):
    """A Jenkins pipeline job allowed to ask for deployments to one environment.

    A request naming a Jenkins build is accepted only when the build belongs to a job listed here for
    the request's environment, so an approval for one service can never answer another job's input.
    ``job_path`` is the job's full name as Jenkins shows it (``folder/app/deploy`` for
    ``/job/folder/job/app/job/deploy/``); ``*`` in a segment matches any one name, e.g. ``app/*``
    for the branches of a multibranch pipeline.
    """

    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="jenkins_jobs")
    job_path = models.CharField(
        max_length=300,
        validators=[job_path_validator],
        help_text='The job\'s full name, e.g. "payments/deploy" for /job/payments/job/deploy/; '
        '"*" matches one name (e.g. "payments/*" for a multibranch pipeline).',
    )
    deploy_stage = models.CharField(
        max_length=100,
        default="Deploy",
        help_text="The pipeline stage that deploys (after the portal's input): reconciliation reads its "
        "status from the build's wfapi/describe.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment__service__name", "environment__name", "job_path"]
        verbose_name = "Jenkins job"
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "job_path"],
                name="jenkins_job_unique_per_environment",
                violation_error_message="This job is already listed for this environment.",
            ),
            models.CheckConstraint(
                condition=~Q(job_path="") & ~Q(deploy_stage=""),
                name="jenkins_job_path_and_stage_required",
                violation_error_message="A Jenkins job needs its path and the name of its deploy stage.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_path} → {self.environment}"


class InputAnswer(models.TextChoices):
    PROCEEDED = "proceeded", "Proceeded"
    ABORTED = "aborted", "Aborted"


class JenkinsBuild(models.Model):
    """The Jenkins build a request decides, and the ``input`` step in it that waits for the portal.

    Written when the request is submitted (the pipeline names its ``BUILD_URL`` and input id in the
    request's ``external_ids``); one build's input belongs to one request, so a replayed submission
    is refused. ``answer``/``answered_by`` record what Jenkins says happened to the input.
    """

    request = models.OneToOneField(
        "deployments.DeploymentRequest", on_delete=models.PROTECT, related_name="jenkins_build"
    )
    job = models.ForeignKey(JenkinsJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="builds")
    build_url = models.CharField(max_length=500, help_text="The build's URL on the configured Jenkins (BUILD_URL).")
    job_path = models.CharField(max_length=300)
    build_number = models.PositiveIntegerField()
    input_id = models.CharField(max_length=100, help_text="The input step's id, as Jenkins uses it in URLs.")
    deploy_stage = models.CharField(max_length=100, default="Deploy")
    answer = models.CharField(max_length=16, choices=InputAnswer.choices, blank=True, default="")
    answered_by = models.CharField(
        max_length=150, blank=True, default="", help_text="The Jenkins user Jenkins says proceeded the input."
    )
    result = models.CharField(max_length=32, blank=True, default="", help_text="The build's result, last read.")
    checked_at = models.DateTimeField(null=True, blank=True)
    settled = models.BooleanField(
        default=False, help_text="Reconciliation found the build ended and what it deployed recorded."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "Jenkins build"
        constraints = [
            models.UniqueConstraint(
                fields=["build_url", "input_id"],
                name="jenkins_build_input_once",
                violation_error_message="This build's input already belongs to another request.",
            ),
            models.CheckConstraint(
                condition=~Q(build_url="") & ~Q(input_id=""),
                name="jenkins_build_url_and_input_required",
                violation_error_message="A Jenkins build needs its URL and input id.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_path} #{self.build_number} (input {self.input_id})"
