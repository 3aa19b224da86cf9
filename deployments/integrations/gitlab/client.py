"""The one client for GitLab's REST API (python-gitlab), as the portal's GitLab bot user.

Every call:

1. goes to the configured instance only (``GITLAB_URL``): the session refuses any other scheme,
   host or port — a pagination ``Link`` or a redirect pointing elsewhere is never followed — and
   connects through the outbound URL policy (``portal.outbound``: addresses checked at connect,
   private ones only when listed in ``PORTAL_OUTBOUND_ALLOWED_HOSTS``);
2. carries the bot's token in ``PRIVATE-TOKEN`` (never logged, never stored in the database);
3. has a total deadline of ``PORTAL_HTTP_TIMEOUT`` seconds (connect, headers and the whole body),
   and a bounded body;
4. is made once: python-gitlab's own sleeping on 429 and retrying on 5xx are switched off, because
   the caller (the outbox, a periodic poll) owns retries and honours ``Retry-After`` /
   ``RateLimit-Reset`` from ``GitLabError.headers``.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote, urlsplit

import gitlab
import requests
from django.conf import settings
from gitlab import exceptions as gitlab_exceptions

from portal import outbound

logger = logging.getLogger(__name__)

USER_AGENT = "deployment-authorization-portal"
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
PAGE_SIZE = 100  # GitLab's maximum per_page


class GitLabError(Exception):
    """A call to GitLab failed: unreachable, refused by policy, or answered with an error status."""

    def __init__(
        self, message: str, *, status_code: int | None = None, headers: dict | None = None, permanent: bool = False
    ):
        super().__init__(message)
        self.status_code = status_code
        self.headers = dict(headers or {})
        self.permanent = permanent


class GitLabNotConfigured(GitLabError):
    """``GITLAB_TOKEN`` is missing."""

    def __init__(self, message: str = "GITLAB_TOKEN (or GITLAB_TOKEN_FILE) must be set to call GitLab."):
        super().__init__(message, permanent=True)


def base_url() -> str:
    return settings.GITLAB_URL.rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_instance_url(url: str) -> bool:
    """True when ``url`` is on the configured GitLab instance (same scheme, host, port and path prefix)."""
    try:
        parts = urlsplit(url or "")
        if parts.username or parts.password:
            return False
        same_origin = _origin(url) == _origin(base_url())
    except ValueError:
        return False
    prefix = urlsplit(base_url()).path.rstrip("/")
    return same_origin and (not prefix or parts.path == prefix or parts.path.startswith(prefix + "/"))


class GitLabSession(outbound.CheckedSession):
    """A checked session bound to the GitLab instance, with a total deadline per call."""

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__()
        self.deadline_seconds = deadline_seconds
        self.headers["User-Agent"] = USER_AGENT
        self.last_response: requests.Response | None = None

    def send(self, request, **kwargs):
        if not is_instance_url(request.url):
            raise outbound.OutboundRefused(f"{urlsplit(request.url).netloc} is not the configured GitLab instance")
        deadline = time.monotonic() + self.deadline_seconds
        kwargs["timeout"] = self.deadline_seconds
        stream = kwargs.pop("stream", False)
        response = super().send(request, stream=True, **kwargs)
        self.last_response = response
        if stream:
            return response
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise requests.exceptions.ReadTimeout(f"GitLab did not answer within {self.deadline_seconds:g} s")
                if size > MAX_RESPONSE_BYTES:
                    raise requests.exceptions.ContentDecodingError("GitLab's answer is too large")
                chunks.append(chunk)
        finally:
            response.close()
        response._content = b"".join(chunks)
        response._content_consumed = True
        return response


class _OneShotGitlab(gitlab.Gitlab):
    """python-gitlab with its retry loop switched off: one HTTP request per call."""

    def http_request(self, verb, path, *args, **kwargs):
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        return super().http_request(verb, path, *args, **kwargs)


def _message(exc: gitlab_exceptions.GitlabError) -> str:
    text = exc.error_message if isinstance(exc.error_message, str) else ""
    return " ".join(text.split())[:300]


class GitLabClient:
    """The endpoints the portal uses, returning GitLab's JSON as dicts and lists."""

    def __init__(self) -> None:
        if not settings.GITLAB_TOKEN:
            raise GitLabNotConfigured()
        self.timeout = settings.PORTAL_HTTP_TIMEOUT
        self.session = GitLabSession(self.timeout)
        self.gl = _OneShotGitlab(
            base_url(),
            private_token=settings.GITLAB_TOKEN,
            timeout=self.timeout,
            session=self.session,
            keep_base_url=True,
            per_page=PAGE_SIZE,
            user_agent=USER_AGENT,
        )

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the one error translation ----------------------------------------------------------
    def call(self, what: str, func, *args, **kwargs) -> Any:
        """Run one python-gitlab call; any failure becomes a ``GitLabError`` naming ``what`` (never the token)."""
        self.session.last_response = None
        try:
            return func(*args, **kwargs)
        except gitlab_exceptions.GitlabError as exc:
            response = self.session.last_response
            headers = dict(response.headers) if response is not None else {}
            code = exc.response_code
            detail = _message(exc)
            raise GitLabError(
                f"{what}: GitLab answered {outbound.describe_status(code) if code else 'an error'}"
                + (f" ({detail})" if detail else ""),
                status_code=code,
                headers=headers,
            ) from None
        except outbound.OutboundRefused as exc:
            raise GitLabError(f"{what}: {exc}", permanent=True) from None
        except requests.RequestException as exc:
            reason = outbound.describe_failure(exc, timeout=self.timeout)
            raise GitLabError(f"{what}: {reason}", permanent=reason.startswith("destination refused")) from None

    def _project(self, project: str | int):
        return self.gl.projects.get(project, lazy=True)

    # --- endpoints ------------------------------------------------------------------------
    def current_user(self) -> dict:
        """``GET /user``: the bot the token belongs to."""

        def run():
            self.gl.auth()
            return self.gl.user.attributes

        return self.call("GET /user", run)

    def project(self, project: str | int) -> dict:
        return self.call(f"GET project {project}", lambda: self.gl.projects.get(project).attributes)

    def deployments(
        self,
        project: str | int,
        *,
        environment: str,
        status: str | None = None,
        updated_after: str | None = None,
        max_items: int = 5000,
    ) -> list[dict]:
        """``GET /projects/:id/deployments?environment=…&status=…`` newest first, following the pages."""
        params: dict[str, Any] = {"environment": environment, "order_by": "id", "sort": "desc"}
        if status:
            params["status"] = status
        if updated_after:
            params["updated_after"] = updated_after
        manager = self._project(project).deployments

        def run():
            out = []
            for item in manager.list(iterator=True, **params):
                out.append(item.attributes)
                if len(out) >= max_items:
                    break
            return out

        return self.call(f"GET deployments of {project} ({environment})", run)

    def deployment(self, project: str | int, deployment_id: int) -> dict:
        manager = self._project(project).deployments
        return self.call(f"GET deployment {deployment_id}", lambda: manager.get(deployment_id).attributes)

    def approve_deployment(
        self, project: str | int, deployment_id: int, *, status: str, comment: str, represented_as: str | None = None
    ) -> dict:
        """``POST /projects/:id/deployments/:deployment_id/approval``."""
        deployment = self._project(project).deployments.get(deployment_id, lazy=True)
        return self.call(
            f"POST approval of deployment {deployment_id}",
            deployment.approval,
            status=status,
            comment=comment,
            represented_as=represented_as or None,
        )

    def play_job(self, project: str | int, job_id: int) -> None:
        """``POST /projects/:id/jobs/:job_id/play`` (a manual job)."""
        job = self._project(project).jobs.get(job_id, lazy=True)
        self.call(f"POST play of job {job_id}", job.play)

    def job(self, project: str | int, job_id: int) -> dict:
        manager = self._project(project).jobs
        return self.call(f"GET job {job_id}", lambda: manager.get(job_id).attributes)

    def compare(self, project: str | int, base: str, head: str) -> dict:
        """``GET /projects/:id/repository/compare?from=…&to=…``."""
        compare = self._project(project).repository_compare
        return self.call(f"GET compare {base[:12]}...{head[:12]}", compare, base, head)

    def merge_requests_for_commit(self, project: str | int, sha: str) -> list[dict]:
        """``GET /projects/:id/repository/commits/:sha/merge_requests``."""
        commit = self._project(project).commits.get(sha, lazy=True)
        return self.call(f"GET merge requests of {sha[:12]}", lambda: list(commit.merge_requests(get_all=True)))

    def pipeline_jobs(self, project: str | int, pipeline_id: int) -> list[dict]:
        """``GET /projects/:id/pipelines/:pipeline_id/jobs`` (every page)."""
        pipeline = self._project(project).pipelines.get(pipeline_id, lazy=True)
        return self.call(
            f"GET jobs of pipeline {pipeline_id}", lambda: [j.attributes for j in pipeline.jobs.list(get_all=True)]
        )

    def commit_statuses(self, project: str | int, sha: str) -> list[dict]:
        """``GET /projects/:id/repository/commits/:sha/statuses`` (every page)."""
        commit = self._project(project).commits.get(sha, lazy=True)
        return self.call(
            f"GET statuses of {sha[:12]}", lambda: [s.attributes for s in commit.statuses.list(get_all=True)]
        )

    def protected_branches(self, project: str | int) -> list[dict]:
        manager = self._project(project).protectedbranches
        return self.call(
            f"GET protected branches of {project}", lambda: [b.attributes for b in manager.list(get_all=True)]
        )

    def protected_environment(self, project: str | int, name: str) -> dict | None:
        """``GET /projects/:id/protected_environments/:name``; None when the environment is not protected."""
        manager = self._project(project).protected_environments
        try:
            return self.call(f"GET protected environment {name}", lambda: manager.get(name).attributes)
        except GitLabError as exc:
            if exc.status_code == 404:
                return None
            raise

    def hooks(self, project: str | int) -> list[dict]:
        manager = self._project(project).hooks
        return self.call(f"GET hooks of {project}", lambda: [h.attributes for h in manager.list(get_all=True)])

    # --- protection enforcement and freeze periods (raw documented endpoints) ----------------
    def _path(self, project: str | int, rest: str) -> str:
        return f"/projects/{quote(str(project), safe='')}{rest}"

    def protect_branch(
        self, project: str | int, name: str, *, push_access_level: int, merge_access_level: int, allow_force_push: bool
    ) -> dict:
        """``POST /projects/:id/protected_branches`` (``name`` may be a wildcard such as ``release/*``)."""
        data = {
            "name": name,
            "push_access_level": push_access_level,
            "merge_access_level": merge_access_level,
            "allow_force_push": allow_force_push,
        }
        return self.call(
            f"POST protected branch {name}",
            lambda: self.gl.http_post(self._path(project, "/protected_branches"), post_data=data),
        )

    def unprotect_branch(self, project: str | int, name: str) -> None:
        """``DELETE /projects/:id/protected_branches/:name``."""
        path = self._path(project, f"/protected_branches/{quote(name, safe='')}")
        self.call(f"DELETE protected branch {name}", lambda: self.gl.http_delete(path))

    def protect_environment(self, project: str | int, name: str, *, approval_rules: list[dict]) -> dict:
        """``POST /projects/:id/protected_environments`` (maintainers deploy; the given approval rules)."""
        data = {"name": name, "deploy_access_levels": [{"access_level": 40}], "approval_rules": approval_rules}
        return self.call(
            f"POST protected environment {name}",
            lambda: self.gl.http_post(self._path(project, "/protected_environments"), post_data=data),
        )

    def update_protected_environment(self, project: str | int, name: str, *, approval_rules: list[dict]) -> dict:
        """``PUT /projects/:id/protected_environments/:name`` with ``approval_rules`` (an ``id`` updates a rule)."""
        path = self._path(project, f"/protected_environments/{quote(name, safe='')}")
        return self.call(
            f"PUT protected environment {name}",
            lambda: self.gl.http_put(path, post_data={"approval_rules": approval_rules}),
        )

    def freeze_periods(self, project: str | int) -> list[dict]:
        """``GET /projects/:id/freeze_periods`` (every page)."""
        path = self._path(project, "/freeze_periods")
        return self.call(f"GET freeze periods of {project}", lambda: list(self.gl.http_list(path, get_all=True)))

    def create_freeze_period(
        self, project: str | int, *, freeze_start: str, freeze_end: str, cron_timezone: str
    ) -> dict:
        data = {"freeze_start": freeze_start, "freeze_end": freeze_end, "cron_timezone": cron_timezone}
        path = self._path(project, "/freeze_periods")
        return self.call(f"POST freeze period of {project}", lambda: self.gl.http_post(path, post_data=data))

    def update_freeze_period(
        self, project: str | int, period_id: int, *, freeze_start: str, freeze_end: str, cron_timezone: str
    ) -> dict:
        data = {"freeze_start": freeze_start, "freeze_end": freeze_end, "cron_timezone": cron_timezone}
        path = self._path(project, f"/freeze_periods/{int(period_id)}")
        return self.call(f"PUT freeze period {period_id}", lambda: self.gl.http_put(path, post_data=data))

    def delete_freeze_period(self, project: str | int, period_id: int) -> None:
        path = self._path(project, f"/freeze_periods/{int(period_id)}")
        self.call(f"DELETE freeze period {period_id}", lambda: self.gl.http_delete(path))
