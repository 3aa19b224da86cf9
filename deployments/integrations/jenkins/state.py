"""What Jenkins says about a build, read from ``<build>/api/json`` and ``<build>/wfapi/describe``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from deployments.choices import ExecutionStatus

from .models import InputAnswer, JenkinsBuild

# wfapi stage statuses → what the deploy stage did (None: it did not run).
STAGE_STATUSES = {
    "SUCCESS": ExecutionStatus.SUCCESS,
    "UNSTABLE": ExecutionStatus.SUCCESS,
    "FAILED": ExecutionStatus.FAILURE,
    "ABORTED": ExecutionStatus.ERROR,
    "IN_PROGRESS": ExecutionStatus.IN_PROGRESS,
    "PAUSED_PENDING_INPUT": ExecutionStatus.IN_PROGRESS,
    "NOT_EXECUTED": None,
}
APPROVER_ACTION = "org.jenkinsci.plugins.workflow.support.steps.input.ApproverAction"
SHA_LENGTH = 40


@dataclass(frozen=True)
class BuildState:
    building: bool
    result: str
    proceeded_by: str  # the user Jenkins recorded proceeding an input of the build, if any
    shas: tuple[str, ...]  # the commits the build checked out (Git plugin's BuildData: the project's, and
    # those of any shared library), if Jenkins says
    started_at: datetime | None

    @property
    def sha(self) -> str:
        return self.shas[0] if self.shas else ""

    def built(self, sha: str) -> str:
        """``sha`` when the build checked it out (or says nothing), else the commit it did check out."""
        return sha if not self.shas or sha in self.shas else self.sha

    @classmethod
    def from_api(cls, data) -> BuildState:
        data = data if isinstance(data, dict) else {}
        actions = [a for a in data.get("actions") or [] if isinstance(a, dict)]
        approvers = [
            a.get("userId")
            for a in actions
            if isinstance(a.get("userId"), str) and a.get("_class", APPROVER_ACTION) == APPROVER_ACTION
        ]
        shas = [
            ((a.get("lastBuiltRevision") or {}).get("SHA1") or "")
            for a in actions
            if isinstance(a.get("lastBuiltRevision"), dict)
        ]
        found = tuple(dict.fromkeys(s.lower() for s in shas if isinstance(s, str) and len(s) == SHA_LENGTH))
        timestamp = data.get("timestamp")
        started = (
            datetime.fromtimestamp(timestamp / 1000, UTC)
            if isinstance(timestamp, int | float) and not isinstance(timestamp, bool) and timestamp > 0
            else None
        )
        return cls(
            building=data.get("building") is True,
            result=data.get("result") if isinstance(data.get("result"), str) else "",
            proceeded_by=approvers[-1] if approvers else "",
            shas=found,
            started_at=started,
        )


def deploy_stage_status(describe, stage_name: str) -> str | None:
    """The execution status of the stage named ``stage_name`` (``wfapi/describe``), or None when the
    build has no such stage or it did not run."""
    stages = describe.get("stages") if isinstance(describe, dict) else None
    for stage in stages or []:
        if isinstance(stage, dict) and stage.get("name") == stage_name:
            return STAGE_STATUSES.get(str(stage.get("status") or "").upper())
    return None


def record_state(build: JenkinsBuild, state: BuildState | None = None, *, answer: str = "") -> JenkinsBuild:
    """Keep what Jenkins last said about the build (its result, who proceeded its input) and how the
    portal answered the input (audited)."""
    build.checked_at = timezone.now()
    if state is not None:
        build.result = state.result
        if state.proceeded_by:
            build.answer, build.answered_by = InputAnswer.PROCEEDED, state.proceeded_by[:150]
    if answer:
        build.answer = answer
    build.save(update_fields=["result", "checked_at", "answer", "answered_by"])
    return build
