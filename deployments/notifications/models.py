"""Notification configuration and the log that makes every notification happen once.

Chat webhook URLs are secrets (anyone holding one can post into the channel): they are stored
encrypted (``deployments.delivery.secrets``), never shown back in full, and excluded from audit diffs.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from deployments.delivery.secrets import encrypt_secret, hint, readable_secret


class ChatKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams (Workflows webhook)"
    JSON = "json", "Generic JSON webhook"


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    CHAT = "chat", "Chat webhook"


class NotificationKind(models.TextChoices):
    AWAITING = "awaiting", "Awaiting approval"
    REMINDER = "reminder", "Reminder"
    DECISION = "decision", "Decision"
    # The requester's request ended without a rejection: superseded, cancelled by someone else, expired.
    ENDED = "ended", "Request ended"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (retries exhausted)"


class ChatChannel(models.Model):
    """A chat channel of one environment, reached through an incoming webhook (Slack, Teams, JSON)."""

    environment = models.ForeignKey(
        "deployments.Environment", on_delete=models.CASCADE, related_name="chat_channels"
    )
    name = models.CharField(max_length=100, help_text="A label, e.g. #deploys-payments.")
    kind = models.CharField(max_length=8, choices=ChatKind.choices)
    webhook_url_encrypted = models.TextField(editable=False, default="")
    webhook_hint = models.CharField(
        max_length=80, editable=False, default="", help_text="Host and last characters, to recognise the URL."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "name"],
                name="chatchannel_unique_name_per_environment",
                violation_error_message="This environment already has a chat channel with this name.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}) for {self.environment_id}"

    @property
    def webhook_url(self) -> str:
        return readable_secret(self.webhook_url_encrypted)

    def set_webhook_url(self, url: str) -> None:
        self.webhook_url_encrypted = encrypt_secret(url)
        self.webhook_hint = hint(url)


class NotificationLog(models.Model):
    """One notification to one recipient (an e-mail address or a chat channel) about one request.

    The unique key (request, kind, channel, recipient, period) makes sending idempotent: a task
    that runs twice, or two beat runs of the reminder job, claim the same row and send once.
    """

    request = models.ForeignKey(
        "deployments.DeploymentRequest", on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    channel = models.CharField(max_length=8, choices=NotificationChannel.choices)
    recipient = models.CharField(max_length=254, help_text="An e-mail address, or chat:<channel id>.")
    user = models.ForeignKey(
        "compliance.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    chat_channel = models.ForeignKey(ChatChannel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    period = models.PositiveIntegerField(default=0, help_text="Reminder number (0 for one-off notifications).")
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "kind", "channel", "recipient", "period"],
                name="notification_once_per_recipient",
                violation_error_message="This notification was already sent to this recipient.",
            ),
            models.CheckConstraint(
                condition=~Q(recipient=""),
                name="notification_has_recipient",
                violation_error_message="A notification needs a recipient.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient} about #{self.request_id} ({self.status})"
