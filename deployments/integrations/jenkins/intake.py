"""Requests from Jenkins: the pipeline names its build and the ``input`` step that waits for the portal.

The Jenkinsfile's gate stage creates the request through the API (or ``portal-gate``) with two
``external_ids``: ``jenkins_build_url`` (``$BUILD_URL``) and ``jenkins_input_id`` (the input step's
``id``). When such a request is submitted (inside ``submit_request``'s transaction, on
``request_transitioned`` from nothing), ``link_build`` checks them and writes the ``JenkinsBuild``
the decision will be delivered to:

1. the portal has a Jenkins configured (``JENKINS_URL``, user and token);
2. the build URL is a build on that Jenkins (``…/job/<a>/job/<b>/<number>/``: same scheme, host, port
   and context path — the portal never calls anywhere else);
3. the build's job is listed for the request's environment (``JenkinsJob``), so an approval for one
   environment can never answer another job's input;
4. the input id is one Jenkins accepts in URLs;
5. this build's input does not already belong to another request (a replayed submission).

Any failure refuses the submission (``RuleViolation`` naming the problem): the request is rolled
back with everything it wrote, and the gate records the refusal.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from django.db import IntegrityError, transaction
from django.dispatch import receiver

from compliance.errors import RuleViolation
from deployments.models import DeploymentRequest
from deployments.signals import request_transitioned

from .client import BuildRef, configured_problem, input_id_problem, jenkins_input_id, parse_build_url
from .models import JenkinsBuild, JenkinsJob

BUILD_URL_KEY = "jenkins_build_url"
INPUT_ID_KEY = "jenkins_input_id"


def _refuse(message: str) -> RuleViolation:
    return RuleViolation("jenkins_build_refused", message, status_code=400)


def job_matches(pattern: str, names: tuple[str, ...]) -> bool:
    """``payments/*`` matches ``("payments", "main")``: one pattern segment per job name."""
    segments = [s for s in pattern.strip("/").split("/") if s]
    return len(segments) == len(names) and all(fnmatchcase(n, s) for s, n in zip(segments, names, strict=True))


def job_for(environment, build: BuildRef) -> JenkinsJob | None:
    jobs = JenkinsJob.objects.filter(environment=environment).order_by("job_path", "pk")
    return next((job for job in jobs if job_matches(job.job_path, build.names)), None)


def link_build(*, request: DeploymentRequest, build_url: str, input_id: str) -> JenkinsBuild:
    """Check what the pipeline named and link the build to ``request`` (see the module docstring)."""
    problem = configured_problem()
    if problem:
        raise _refuse(f"This request names a Jenkins build, but the portal cannot answer Jenkins: {problem}")
    if not isinstance(build_url, str) or not build_url or not isinstance(input_id, str) or not input_id:
        raise _refuse(f"A Jenkins request needs both {BUILD_URL_KEY} and {INPUT_ID_KEY} in external_ids.")
    try:
        build = parse_build_url(build_url)
    except ValueError as exc:
        raise _refuse(f"{BUILD_URL_KEY} is refused: {exc}.") from None
    problem = input_id_problem(input_id)
    if problem:
        raise _refuse(f"{INPUT_ID_KEY} is refused: {problem}.")
    job = job_for(request.environment, build)
    if job is None:
        raise _refuse(
            f"The Jenkins job {build.job_path!r} may not deploy to {request.environment}: an administrator "
            f"lists the jobs allowed for an environment (Jenkins jobs in the admin)."
        )
    input_id = jenkins_input_id(input_id)
    earlier = JenkinsBuild.objects.filter(build_url=build.url, input_id=input_id).values_list("request_id", flat=True)
    if earlier:
        raise _refuse(
            f"Build {build.job_path} #{build.number} already asked for its input {input_id} "
            f"(request #{earlier[0]}); a build's input is decided once."
        )
    try:
        with transaction.atomic():
            return JenkinsBuild.objects.create(
                request=request,
                job=job,
                build_url=build.url,
                job_path=build.job_path,
                build_number=build.number,
                input_id=input_id,
                deploy_stage=job.deploy_stage,
            )
    except IntegrityError:  # the same build and input submitted twice at once: the other one won
        raise _refuse(f"Build {build.job_path} #{build.number} already asked for its input {input_id}.") from None


@receiver(request_transitioned, dispatch_uid="deployments.jenkins.link_build")
def _link_on_submit(sender, request, old_status, new_status, **kwargs) -> None:
    ids = request.external_ids or {}
    if old_status is None and (BUILD_URL_KEY in ids or INPUT_ID_KEY in ids):
        link_build(request=request, build_url=ids.get(BUILD_URL_KEY), input_id=ids.get(INPUT_ID_KEY))
