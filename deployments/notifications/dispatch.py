"""Who is told what, and when: e-mail to eligible approvers, reminders, the decision to the requester,
and per-environment chat channels (Slack, Microsoft Teams Workflows, generic JSON) through apprise.

Flow (every step after the decision has committed, so a failing notification never blocks or loses it):

1. ``request_transitioned`` → ``on_commit`` → task ``notify_request(request_id, kind)``.
2. ``plan_notifications`` claims one ``NotificationLog`` row per recipient (unique key: request,
   kind, channel, recipient, period — running twice sends nothing twice), writes a "notified"
   timeline event, and after commit enqueues ``deliver_notification(log_id)`` for each new row.
3. ``deliver`` sends one notification; a failure is recorded on the row and the task retries with
   capped exponential backoff; ``sweep`` (beat) re-enqueues rows left pending and plans reminders.

Claim, lease, backoff, sweep and give-up are the portal's one outbox mechanism (``portal.outbox``,
``NOTIFICATIONS`` below): a row is "sending" while claimed, and the claim is its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import apprise
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from compliance.people.roles import Role
from deployments.choices import WITHDRAWING_STATUSES, EventKind, RequestStatus
from deployments.gate import eligibility
from deployments.models import (
    DeploymentRequest,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    RequestEvent,
)
from deployments.notifications.models import (
    ChatChannel,
    ChatKind,
    NotificationChannel,
    NotificationKind,
    NotificationLog,
    NotificationStatus,
)
from deployments.tasks import NOTIFICATION_RETRY, deliver_notification, notify_request
from portal import enqueue, outbound
from portal.links import absolute_url
from portal.outbox import Outbox

logger = logging.getLogger(__name__)

DECIDED_STATUSES = (RequestStatus.APPROVED, RequestStatus.REJECTED)


class DeliveryFailed(Exception):
    """A notification could not be sent this time; the task retries it."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


# --- recipients ---------------------------------------------------------------------------------


def request_url(request: DeploymentRequest) -> str:
    return absolute_url("deployments:request_detail", request.pk)


def eligible_approvers(request: DeploymentRequest) -> list:
    """People who may decide on ``request`` now (``eligibility.may_decide``: role and permission,
    compliance gates, separation of duties, one decision each, freezes), among the approvers granted
    the environment's approve permission."""
    environment = request.environment
    direct = EnvironmentUserObjectPermission.objects.filter(
        content_object=environment, permission__codename="approve_deployment"
    ).values("user_id")
    groups = EnvironmentGroupObjectPermission.objects.filter(
        content_object=environment, permission__codename="approve_deployment"
    ).values("group_id")
    candidates = (
        get_user_model()
        .objects.filter(is_active=True, is_service_account=False, groups__name=str(Role.APPROVER))
        .filter(Q(pk__in=direct) | Q(groups__in=groups))
        .exclude(approvals__request=request)
        .distinct()
        .order_by("username")
    )
    now = timezone.now()
    approvals = list(request.approvals.all())
    return [
        user for user in candidates
        if eligibility.may_decide(user=user, request=request, now=now, approvals=approvals)
    ]


# --- planning -----------------------------------------------------------------------------------


def _claim(request, *, kind, channel, recipient, period, user=None, chat_channel=None) -> NotificationLog | None:
    try:
        with transaction.atomic():
            log, created = NotificationLog.objects.get_or_create(
                request=request, kind=kind, channel=channel, recipient=recipient, period=period,
                defaults={"user": user, "chat_channel": chat_channel},
            )
    except IntegrityError:  # a parallel run claimed it first
        return None
    return log if created else None


def _summary(kind: str, people: Iterable, chats: Iterable[ChatChannel], period: int) -> str:
    names = ", ".join(p.username for p in people)
    channels = ", ".join(c.name for c in chats)
    what = {
        NotificationKind.AWAITING: "Approvers notified",
        NotificationKind.REMINDER: f"Reminder {period} sent",
        NotificationKind.DECISION: "Decision sent",
        NotificationKind.ENDED: "Requester told",
    }[kind]
    parts = [f"by e-mail to {names}" if names else "", f"in chat {channels}" if channels else ""]
    return f"{what} " + " and ".join(p for p in parts if p) + "."


@transaction.atomic
def plan_notifications(*, request_id: int, kind: str, period: int = 0) -> list[int]:
    """Claim the notifications ``kind`` calls for and enqueue their delivery after commit.

    Returns the ids of newly claimed rows (empty when everything was already claimed).
    """
    request = (
        DeploymentRequest.objects.select_related("environment__service", "requester").filter(pk=request_id).first()
    )
    if request is None:
        return []
    if kind in (NotificationKind.AWAITING, NotificationKind.REMINDER):
        if request.status != RequestStatus.AWAITING_APPROVAL:
            return []
        people = [u for u in eligible_approvers(request) if u.email]
    elif kind in (NotificationKind.DECISION, NotificationKind.ENDED):
        if request.status not in (DECIDED_STATUSES if kind == NotificationKind.DECISION else WITHDRAWING_STATUSES):
            return []
        requester = request.requester
        people = [requester] if requester is not None and requester.email and requester.is_active else []
    else:
        raise ValueError(f"unknown notification kind {kind!r}")

    claimed: list[NotificationLog] = []
    told, chats_told = [], []
    for person in people:
        log = _claim(request, kind=kind, channel=NotificationChannel.EMAIL, recipient=person.email.lower(),
                     period=period, user=person)
        if log:
            claimed.append(log)
            told.append(person)
    chats = ChatChannel.objects.filter(environment=request.environment, is_active=True)
    for chat in chats if kind != NotificationKind.ENDED else ():
        log = _claim(request, kind=kind, channel=NotificationChannel.CHAT, recipient=f"chat:{chat.pk}",
                     period=period, chat_channel=chat)
        if log:
            claimed.append(log)
            chats_told.append(chat)
    if claimed:
        RequestEvent.objects.create(
            request=request,
            kind=EventKind.NOTIFIED,
            message=_summary(kind, told, chats_told, period),
            data={"kind": kind, "period": period, "notification_ids": [log.pk for log in claimed]},
        )
    ids = [log.pk for log in claimed]
    transaction.on_commit(lambda: enqueue_deliveries(ids))
    return ids


def enqueue_deliveries(ids: Iterable[int]) -> None:
    for log_id in ids:  # broker down: the sweep re-enqueues pending rows later
        enqueue.publish(deliver_notification, (log_id,), what=f"notification {log_id}")


# --- messages -----------------------------------------------------------------------------------


def _message(log: NotificationLog) -> tuple[str, str]:
    """(subject/title, body) for one notification."""
    req = log.request
    where = f"{req.environment.service.name}/{req.environment.name}"
    who = req.requester.username if req.requester else (req.requester_login or "CI")
    url = request_url(req)
    if log.kind == NotificationKind.ENDED:
        withdrawn = req.approval_expires_at is not None
        subject = f"[Deployment {req.get_status_display().lower()}] {where} @ {req.short_sha}"
        lines = [f"Your deployment request #{req.pk} for {where} ({req.ref} @ {req.short_sha}) was "
                 f"{req.get_status_display().lower()}.", req.status_reason]
        if req.superseded_by_id:
            lines.append(f"Newer request: {absolute_url('deployments:request_detail', req.superseded_by_id)}")
        if withdrawn:
            lines.append("Its approval is withdrawn: do not deploy this commit on it. A deployment that had "
                         "already started while the approval stood remains authorized.")
    elif log.kind == NotificationKind.DECISION:
        subject = f"[Deployment {req.get_status_display().lower()}] {where} @ {req.short_sha}"
        lines = [f"Your deployment request #{req.pk} for {where} ({req.ref} @ {req.short_sha}) was "
                 f"{req.get_status_display().lower()}.", req.status_reason]
        for approval in req.approvals.select_related("approver"):
            line = f"- {approval.get_decision_display()} by {approval.approver.username}"
            lines.append(line + (f": {approval.comment}" if approval.comment else ""))
    else:
        prefix = "Reminder: " if log.kind == NotificationKind.REMINDER else ""
        subject = f"[Deployment approval] {prefix}{where} @ {req.short_sha} awaits your decision"
        lines = [f"{prefix}{who} requests the deployment of {req.ref} @ {req.short_sha} to {where}."]
        if req.title:
            lines.append(req.title)
        if req.is_emergency:
            lines.append(f"EMERGENCY: {req.emergency_justification}")
        if req.status_reason:
            lines.append(req.status_reason)
    lines += ["", f"Open the request: {url}"]
    return subject, "\n".join(line for line in lines if line is not None)


def apprise_url(kind: str, url: str) -> str:
    """The apprise URL for a stored webhook URL.

    Slack (``https://hooks.slack.com/...``) and Teams Workflows (``https://...logic.azure.com/workflows/...``)
    URLs are understood by apprise as they are; a generic JSON endpoint ``http(s)://host/path`` becomes
    ``json(s)://host/path`` (apprise posts ``{"version", "title", "message", "type"}``).
    """
    if kind == ChatKind.JSON:
        if url.startswith("https://"):
            return "jsons://" + url[len("https://"):]
        if url.startswith("http://"):
            return "json://" + url[len("http://"):]
    return url


def validate_webhook_url(kind: str, url: str) -> str | None:
    """A message saying what is wrong with ``url``, or None when it may be used.

    The outbound policy first (https, public destination unless allow-listed — ``portal.outbound``),
    then the chat system's own format, as apprise understands it.
    """
    if not url.startswith(("https://", "http://")):
        return "The webhook URL must start with https://."
    problem = outbound.url_problem(url)
    if problem:
        return problem
    if kind == ChatKind.SLACK and not url.startswith("https://hooks.slack.com/"):
        return "A Slack incoming webhook URL starts with https://hooks.slack.com/."
    if apprise.Apprise.instantiate(apprise_url(kind, url)) is None:
        return f"This is not a valid {ChatKind(kind).label} URL."
    return None


def _send_chat(log: NotificationLog, subject: str, body: str) -> None:
    chat = log.chat_channel
    if chat is None or not chat.is_active:
        raise DeliveryFailed("the chat channel was removed or disabled")
    try:
        url = chat.webhook_url
    except ValueError as exc:
        raise DeliveryFailed(str(exc)) from exc
    # The outbound policy again at send time (the allow-list or DNS may have changed since the save)…
    problem = outbound.url_problem(url)
    if problem:
        raise DeliveryFailed(problem.rstrip("."))
    notifier = apprise.Apprise()
    if not notifier.add(apprise_url(chat.kind, url)):
        raise DeliveryFailed(f"the stored {chat.get_kind_display()} URL is not valid")
    # …and at connect: every connection apprise opens is resolved, checked and pinned (guard()).
    # Never put the URL nor the chat system's answer in the error: the URL is a secret, the answer
    # is the receiver's text.
    with outbound.guard() as refusals:
        sent = notifier.notify(title=subject, body=body)
    if refusals:
        raise DeliveryFailed(f"destination refused by outbound policy: {refusals[0]}")
    if not sent:
        raise DeliveryFailed(f"{chat.get_kind_display()} {chat.name!r} did not accept the message "
                             f"(refused, unreachable or timed out; see the worker log)")


def _send_email(log: NotificationLog, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [log.recipient], fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any transport error is retried
        raise DeliveryFailed(f"e-mail to {log.recipient} failed: {type(exc).__name__}") from exc


# --- delivery -----------------------------------------------------------------------------------


SENDING_TIMEOUT = timedelta(minutes=15)

NOTIFICATIONS = Outbox(
    model=NotificationLog,
    ready=(NotificationStatus.PENDING,),
    claimed=NotificationStatus.SENDING,
    claimed_at_field="last_attempt_at",
    failed=NotificationStatus.FAILED,
    lease=lambda: SENDING_TIMEOUT,
    policy=NOTIFICATION_RETRY,
)


def deliver(*, log_id: int) -> str:
    """Send one claimed notification once. Returns its status; raises ``DeliveryFailed`` to retry.

    The row is claimed with a conditional UPDATE (pending → sending) and sent outside any
    transaction, so a slow chat or mail server never holds a lock that a decision could wait for; a
    second worker holding the same id finds nothing to claim. A claim older than ``SENDING_TIMEOUT``
    (a worker that died while sending) may be taken over.
    """
    if not NOTIFICATIONS.claim(log_id, now=timezone.now()):
        return NotificationLog.objects.filter(pk=log_id).values_list("status", flat=True).first() or "missing"
    log = NotificationLog.objects.select_related(
        "request__environment__service", "request__requester", "chat_channel"
    ).get(pk=log_id)
    subject, body = _message(log)
    try:
        if log.channel == NotificationChannel.CHAT:
            _send_chat(log, subject, body)
        else:
            _send_email(log, subject, body)
    except DeliveryFailed as exc:
        NOTIFICATIONS.release(log_id, to=NotificationStatus.PENDING, last_error=str(exc)[:1000])
        raise DeliveryFailed(str(exc), attempts=log.attempts) from exc
    NotificationLog.objects.filter(pk=log_id).update(
        status=NotificationStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    return NotificationStatus.SENT


@transaction.atomic
def give_up(*, log_id: int) -> None:
    """Retries exhausted: mark the notification failed (visible in the admin) and log it."""
    NOTIFICATIONS.give_up(log_id, alert=lambda: logger.error("notification %s failed after all retries", log_id))


# --- periodic: reminders and the sweep ----------------------------------------------------------


def reminder_after() -> timedelta:
    return timedelta(minutes=settings.PORTAL_REMINDER_AFTER_MINUTES)


def sweep(*, now: datetime | None = None) -> dict:
    """Plan reminders for requests waiting too long (one per period), plan missed "awaiting"
    notifications, and re-enqueue deliveries left pending. Safe to run twice and in parallel."""
    now = now or timezone.now()
    every = reminder_after()
    waiting = DeploymentRequest.objects.filter(status=RequestStatus.AWAITING_APPROVAL)
    reminders = 0
    for pk, created_at in waiting.filter(created_at__lte=now - every).values_list("pk", "created_at"):
        period = int((now - created_at) / every)
        reminders += len(plan_notifications(request_id=pk, kind=NotificationKind.REMINDER, period=period))
    never_told = waiting.filter(created_at__lte=now - timedelta(minutes=2)).exclude(
        Exists(NotificationLog.objects.filter(request=OuterRef("pk"), kind=NotificationKind.AWAITING))
    )
    missed = 0
    for pk in never_told.values_list("pk", flat=True):
        missed += len(plan_notifications(request_id=pk, kind=NotificationKind.AWAITING))
    # Never tried (the enqueue failed), tried and left behind longer than any backoff (a lost retry),
    # or claimed by a worker that died while sending (its lease ended: the outbox adds those).
    never_tried = Q(status=NotificationStatus.PENDING, attempts=0, created_at__lte=now - timedelta(minutes=10))
    lost_retry = Q(status=NotificationStatus.PENDING, attempts__gt=0, last_attempt_at__lte=now - timedelta(hours=2))
    stuck = NOTIFICATIONS.due_ids(now=now, overdue=never_tried | lost_retry, limit=500)
    enqueue_deliveries(stuck)
    return {"reminders": reminders, "missed": missed, "re_enqueued": len(stuck)}


# --- the hook -----------------------------------------------------------------------------------


def schedule_on_transition(sender, request, old_status, new_status, actor=None, **kwargs) -> None:
    """``request_transitioned`` receiver: notify after commit (ids only), never inside the decision."""
    if new_status == RequestStatus.AWAITING_APPROVAL:
        kind = NotificationKind.AWAITING
    elif new_status in DECIDED_STATUSES:
        kind = NotificationKind.DECISION
    elif new_status in WITHDRAWING_STATUSES:
        if new_status == RequestStatus.CANCELLED and actor is not None and actor.pk == request.requester_id:
            return  # the requester cancelled it: nothing to tell them
        kind = NotificationKind.ENDED
    else:
        return
    request_id = request.pk

    # The decision is committed first; with the broker down the sweep plans missed notifications later.
    enqueue.publish_on_commit(notify_request, (request_id, kind), what=f"{kind} notifications for #{request_id}")
