"""Race scenarios through the services on PostgreSQL with real threads, each round checked against the
invariants that must hold whichever call wins. Run as a slice in CI (``tests/gate/test_race_slice.py``)
and at length by ``bench/races.py``.

A round starts its calls together (a barrier) and records: the calls that returned, the refusals
(``RuleViolation`` codes), deadlocks (PostgreSQL ``deadlock detected``), other errors, the refusal
rows recorded meanwhile, and every invariant that did not hold.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import CheckState, EventKind, ExecutionStatus, RequestStatus
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest, Execution, Refusal
from tests import factories

FINAL_EVENTS = (EventKind.APPROVED, EventKind.REJECTED)


@dataclass
class Tally:
    iterations: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)  # codes
    recorded: int = 0  # refusal rows written
    deadlocks: int = 0
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)

    def add(self, scenario: str, outcome: dict, violations: list[str]) -> None:
        self.iterations[scenario] += 1
        self.refusals.update(outcome["refused"])
        self.recorded += outcome["recorded"]
        self.deadlocks += outcome["deadlocks"]
        self.errors += [f"{scenario}: {e}" for e in outcome["errors"]]
        self.violations += [f"{scenario} #{self.iterations[scenario]}: {v}" for v in violations]
        if len(outcome["refused"]) != outcome["recorded"]:
            self.violations.append(f"{scenario} #{self.iterations[scenario]}: {len(outcome['refused'])} refusals, "
                                   f"{outcome['recorded']} recorded")


def at_once(calls, *, jitter: float = 0.0) -> dict:
    """Run ``calls`` on their own threads (and database connections) from one barrier."""
    barrier = threading.Barrier(len(calls))
    lock = threading.Lock()
    outcome: dict = {"results": [], "refused": [], "deadlocks": 0, "errors": []}
    before = Refusal.objects.count()

    def runner(call):
        try:
            barrier.wait(timeout=30)
            if jitter:
                time.sleep(random.random() * jitter)
            result = call()
            with lock:
                outcome["results"].append(result)
        except RuleViolation as exc:
            with lock:
                outcome["refused"].append(exc.code)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            with lock:
                if "deadlock detected" in str(exc):
                    outcome["deadlocks"] += 1
                else:
                    outcome["errors"].append(repr(exc)[:300])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    outcome["recorded"] = Refusal.objects.count() - before
    return outcome


class Scenarios:
    """One environment per scenario; ``round(name)`` plays one iteration and returns its violations."""

    def __init__(self, label: str = "races") -> None:
        self.label = label
        self.counter = 0
        make = factories.make_environment
        self.env = {
            "quorum": make(name=f"{label}-quorum", required_approvals=2),
            "approve_vs_reject": make(name=f"{label}-decide"),
            "cancel_vs_approve": make(name=f"{label}-cancel"),
            "expiry_vs_approve": make(name=f"{label}-expiry"),
            "supersede_vs_approve": make(name=f"{label}-supersede"),
            "duplicate_submits": make(name=f"{label}-duplicates"),
            "checks_vs_approve": make(name=f"{label}-checks", required_checks=["tests"]),
            "report_straddling_expiry": make(name=f"{label}-straddle"),
        }
        # The same people in every environment (a password hash each is the slow part of a set-up).
        requester = factories.engineer(username=f"{label}-rita")
        approvers = [factories.approver(username=f"{label}-approver{i}") for i in range(4)]
        for env in self.env.values():
            factories.grant(requester, "request", env)
            for person in approvers:
                factories.grant(person, "approve", env)
        self.requester = dict.fromkeys(self.env, requester)
        self.approvers = dict.fromkeys(self.env, approvers)
        self.bot = factories.UserFactory(username=f"{label}-ci-bot", is_service_account=True)

    names = ("quorum", "approve_vs_reject", "cancel_vs_approve", "expiry_vs_approve", "supersede_vs_approve",
             "duplicate_submits", "checks_vs_approve", "report_straddling_expiry")

    def _submit(self, name: str, **kwargs) -> DeploymentRequest:
        self.counter += 1
        kwargs.setdefault("sha", factories.sha(f"{self.label}-{name}-{self.counter}"))
        return services.submit_request(actor=self.requester[name], environment=self.env[name], ref="main", **kwargs)

    def _approve(self, request, person):
        checklist = factories.full_checklist(request)
        return lambda: services.approve_request(actor=person, request=request, checklist=checklist)

    def play(self, name: str, tally: Tally) -> None:
        started = time.monotonic()
        outcome, violations = getattr(self, name)()
        tally.add(name, outcome, violations)
        tally.seconds[name] += time.monotonic() - started

    # --- the scenarios ------------------------------------------------------------------------

    def quorum(self):
        request = self._submit("quorum")
        outcome = at_once([self._approve(request, p) for p in self.approvers["quorum"]])
        request.refresh_from_db()
        v = []
        if request.status != RequestStatus.APPROVED:
            v.append(f"status {request.status} after 4 approvals of a 2-approval policy")
        if Approval.objects.filter(request=request).count() != 2:
            v.append(f"{Approval.objects.filter(request=request).count()} approvals counted, quorum is 2")
        if request.events.filter(kind=EventKind.APPROVED).count() != 1:
            v.append("not exactly one approved event")
        return outcome, v

    def approve_vs_reject(self):
        request = self._submit("approve_vs_reject")
        yes, no = self.approvers["approve_vs_reject"][:2]
        outcome = at_once([self._approve(request, yes),
                           lambda: services.reject_request(actor=no, request=request, comment="not now")])
        request.refresh_from_db()
        v = []
        if len(outcome["results"]) != 1:
            v.append(f"{len(outcome['results'])} of approve/reject succeeded")
        if request.status not in (RequestStatus.APPROVED, RequestStatus.REJECTED):
            v.append(f"status {request.status}")
        if request.events.filter(kind__in=FINAL_EVENTS).count() != 1:
            v.append("not exactly one final event")
        return outcome, v

    def cancel_vs_approve(self):
        request = self._submit("cancel_vs_approve")
        requester = self.requester["cancel_vs_approve"]
        outcome = at_once([self._approve(request, self.approvers["cancel_vs_approve"][0]),
                           lambda: services.cancel_request(actor=requester, request=request, reason="wrong sha")])
        request.refresh_from_db()
        v = []
        if request.status not in (RequestStatus.APPROVED, RequestStatus.CANCELLED):
            v.append(f"status {request.status}")
        approved = request.approvals.exists()
        cancelled_first = request.status == RequestStatus.CANCELLED and len(outcome["results"]) == 1
        if cancelled_first and approved:
            v.append("an approval recorded on a request cancelled before it")
        return outcome, v

    def expiry_vs_approve(self):
        request = self._submit("expiry_vs_approve")
        DeploymentRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        request.refresh_from_db()
        outcome = at_once([self._approve(request, self.approvers["expiry_vs_approve"][0]),
                           lambda: services.expire_due_requests(actor=None)])
        request.refresh_from_db()
        v = []
        if request.status != RequestStatus.EXPIRED:
            v.append(f"a request past its time limit ended {request.status}")
        if request.approvals.exists():
            v.append("an approval recorded on a request past its time limit")
        return outcome, v

    def supersede_vs_approve(self):
        older = self._submit("supersede_vs_approve")
        outcome = at_once([self._approve(older, self.approvers["supersede_vs_approve"][0]),
                           lambda: self._submit("supersede_vs_approve")])
        older.refresh_from_db()
        v = []
        if older.status not in (RequestStatus.APPROVED, RequestStatus.SUPERSEDED):
            v.append(f"older request {older.status}")
        if older.status == RequestStatus.SUPERSEDED and older.approvals.exists():
            v.append("an approval recorded on a superseded request")
        open_count = DeploymentRequest.objects.filter(
            environment=self.env["supersede_vs_approve"],
            status__in=(RequestStatus.PENDING_CHECKS, RequestStatus.AWAITING_APPROVAL)).count()
        if open_count > 1:
            v.append(f"{open_count} undecided requests for one environment")
        return outcome, v

    def duplicate_submits(self):
        self.counter += 1
        sha = factories.sha(f"{self.label}-dup-{self.counter}")
        env = self.env["duplicate_submits"]
        outcome = at_once([lambda: self._submit("duplicate_submits", sha=sha) for _ in range(3)])
        v = []
        open_count = DeploymentRequest.objects.filter(
            environment=env, status__in=(RequestStatus.PENDING_CHECKS, RequestStatus.AWAITING_APPROVAL)).count()
        if open_count != 1:
            v.append(f"{open_count} undecided requests for one environment after duplicate submits")
        if len(outcome["results"]) + len(outcome["refused"]) + outcome["deadlocks"] + len(outcome["errors"]) != 3:
            v.append("a submit neither succeeded nor was refused")
        return outcome, v

    def checks_vs_approve(self):
        request = self._submit("checks_vs_approve", checks={"tests": CheckState.SUCCESS})
        bot = self.bot
        outcome = at_once([self._approve(request, self.approvers["checks_vs_approve"][0]),
                           lambda: services.record_checks(actor=bot, request=request,
                                                          checks={"tests": CheckState.FAILURE})])
        request.refresh_from_db()
        v = []
        if request.status not in (RequestStatus.APPROVED, RequestStatus.BLOCKED):
            v.append(f"status {request.status}")
        if request.status == RequestStatus.BLOCKED and request.approvals.exists():
            v.append("an approval recorded on a request its failed check blocked")
        if request.status == RequestStatus.APPROVED and request.checks.get("tests") != CheckState.SUCCESS:
            v.append("approved with a failed required check")
        return outcome, v

    def report_straddling_expiry(self):
        request = self._submit("report_straddling_expiry")
        factories.approve(request, self.approvers["report_straddling_expiry"][0])
        lapse = timezone.now() + timedelta(milliseconds=30)
        DeploymentRequest.objects.filter(pk=request.pk).update(approval_expires_at=lapse)
        bot, env, sha = self.bot, self.env["report_straddling_expiry"], request.sha
        run = f"{self.label}-run-{self.counter}"
        outcome = at_once([
            lambda: services.report_execution(actor=bot, environment=env, sha=sha, status=ExecutionStatus.IN_PROGRESS,
                                              request=request, external_id=run),
            lambda: (time.sleep(0.03), services.expire_due_requests(actor=None))[1],
        ], jitter=0.05)
        request.refresh_from_db()
        execution = Execution.objects.filter(environment=env, external_id=run).first()
        v = []
        if execution is None:
            return outcome, ["the run's report was not recorded"]
        if execution.authorized and execution.started_at >= request.approval_expires_at:
            v.append("a run that started after the approval lapsed was authorized")
        if execution.authorized and request.status == RequestStatus.EXPIRED:
            v.append("an authorized run on a request left expired")
        if not execution.authorized and not execution.flag_reason:
            v.append("an unauthorized run without a flag reason")
        if not execution.authorized and request.status not in (RequestStatus.EXPIRED,):
            v.append(f"an unauthorized run while the request is {request.status}")
        return outcome, v
