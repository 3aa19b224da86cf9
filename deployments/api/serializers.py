"""Input and output shapes of the API. Inputs are strict: unknown fields and wrong types are refused."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.choices import (
    CheckState,
    ExecutionStatus,
    RequestDecision,
    RequestSource,
    RequestStatus,
    Tier,
)
from deployments.models import Approval, ApprovalPolicy, Environment, Service
from portal.links import absolute_url


class StrictInput(serializers.Serializer):
    """Refuses fields it does not know instead of silently ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, f in self.fields.items() if not f.read_only})
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("Unknown field.", code="unknown_field")] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictModelInput(StrictInput, serializers.ModelSerializer):
    pass


class StrictCharField(serializers.CharField):
    """A string, never a number or boolean coerced into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def has_control_character(text: str) -> bool:
    """NUL and the other C0/C1 controls (and DEL): never part of a name or key (PostgreSQL refuses
    NUL in text and JSON)."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


class NamedDictField(serializers.DictField):
    """A JSON object whose keys are names: 1 to ``max_key_length`` characters, no control character."""

    def __init__(self, *args, max_key_length: int = 200, max_items: int | None = None, **kwargs):
        self.max_key_length, self.max_items = max_key_length, max_items
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if self.max_items is not None and len(value) > self.max_items:
            raise serializers.ValidationError(f"At most {self.max_items} entries.")
        for key in value:
            if not key or len(key) > self.max_key_length:
                raise serializers.ValidationError(f"Names are 1 to {self.max_key_length} characters.")
            if has_control_character(key):
                raise serializers.ValidationError("Names must not contain control characters (NUL, newline, ...).")
        return value


class StrictFieldMapping:
    """ModelSerializers built from models use the strict fields above."""

    @property
    def serializer_field_mapping(self):
        from django.db import models

        mapping = dict(serializers.ModelSerializer.serializer_field_mapping)
        for field in (models.CharField, models.TextField, models.SlugField, models.URLField):
            base = mapping[field]
            mapping[field] = type(f"Strict{base.__name__}", (StrictCharField, base), {})
        mapping[models.BooleanField] = StrictBooleanField
        for field in (models.IntegerField, models.PositiveIntegerField, models.PositiveSmallIntegerField,
                      models.SmallIntegerField, models.BigIntegerField):
            mapping[field] = StrictIntegerField
        return mapping


# --- configuration ------------------------------------------------------------------------------


class ServiceSerializer(StrictFieldMapping, StrictModelInput):
    class Meta:
        model = Service
        fields = ["id", "name", "display_name", "repository", "ci_provider", "description", "created_at"]
        read_only_fields = ["id", "created_at"]
        # A taken name is a conflict with existing data (409 service_exists), not malformed input.
        extra_kwargs = {"name": {"validators": [v for v in Service._meta.get_field("name").validators]}}

    def create(self, validated_data):
        from django.db import IntegrityError, transaction

        from compliance.errors import RuleViolation

        try:
            with transaction.atomic():
                return super().create(validated_data)
        except IntegrityError:
            raise RuleViolation("service_exists", f"A service named {validated_data['name']} already exists.",
                                status_code=409) from None


class ServiceUpdateSerializer(ServiceSerializer):
    class Meta(ServiceSerializer.Meta):
        read_only_fields = ["id", "name", "created_at"]


class EnvironmentSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    policy = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Environment
        fields = ["id", "service", "name", "tier", "is_protected", "policy", "created_at"]
        read_only_fields = fields


class EnvironmentCreateSerializer(StrictInput):
    service = StrictCharField(max_length=100, help_text="Service name (slug).")
    # The model's name rule, also stated in the schema (PortalAutoSchema maps regex validators).
    name = StrictCharField(max_length=100, help_text="Letters, digits, space and _ . - /.",
                           validators=[v for v in Environment._meta.get_field("name").validators
                                       if isinstance(v, RegexValidator)])
    tier = serializers.ChoiceField(choices=Tier.choices, default=Tier.STAGING)

    def validate_name(self, value):
        Environment._meta.get_field("name").run_validators(value)
        return value


class PolicySerializer(StrictFieldMapping, StrictModelInput):
    environment = serializers.PrimaryKeyRelatedField(read_only=True)
    service = serializers.CharField(source="environment.service.name", read_only=True)
    environment_name = serializers.CharField(source="environment.name", read_only=True)
    required_checks = serializers.ListField(child=StrictCharField(max_length=200), required=False, max_length=50)
    allowed_refs = serializers.ListField(child=StrictCharField(max_length=255), required=False, max_length=50)
    impact_checklist = serializers.ListField(child=StrictCharField(max_length=300), required=False, max_length=50)
    required_approvals = StrictIntegerField(min_value=1, max_value=20, required=False)
    emergency_extra_approvals = StrictIntegerField(min_value=0, max_value=20, required=False)
    request_ttl = serializers.DurationField(required=False, help_text="e.g. \"1 00:00:00\" (one day).")
    approval_ttl = serializers.DurationField(required=False)

    class Meta:
        model = ApprovalPolicy
        fields = ["id", "environment", "service", "environment_name", "required_approvals", "exclude_change_authors",
                  "required_checks", "allowed_refs", "request_ttl", "approval_ttl", "emergency_extra_approvals",
                  "impact_checklist", "require_ticket", "ticket_pattern", "ticket_url_template", "require_risk_level",
                  "require_impact", "require_rollback_plan", "version", "updated_at"]
        read_only_fields = ["id", "environment", "version", "updated_at"]

    def validate(self, attrs):
        for name in ("request_ttl", "approval_ttl"):
            if name in attrs and attrs[name].total_seconds() <= 0:
                raise serializers.ValidationError({name: ["Must be positive."]})
        return attrs


# --- requests -----------------------------------------------------------------------------------


class RequestCreateSerializer(StrictInput):
    service = StrictCharField(max_length=100)
    environment = StrictCharField(max_length=100)
    sha = StrictCharField(max_length=40, help_text="The 40-character commit sha to deploy.")
    ref = StrictCharField(max_length=255, help_text="Branch or tag, e.g. main or refs/tags/v1.2.")
    title = StrictCharField(max_length=300, required=False, allow_blank=True, default="")
    change_authors = serializers.ListField(
        child=StrictCharField(max_length=255), required=False, default=list, max_length=200
    )
    checks = NamedDictField(
        child=serializers.ChoiceField(choices=CheckState.choices), required=False, default=dict, max_items=100,
        help_text="Check name → state (success, pending, failure, neutral, skipped).",
    )
    source = serializers.ChoiceField(choices=[RequestSource.API, RequestSource.CLI], default=RequestSource.API)
    source_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    external_ids = NamedDictField(child=StrictCharField(max_length=255, allow_blank=True), required=False,
                                  default=dict, max_key_length=100, max_items=50, help_text="e.g. the CI run id.")
    requester_login = StrictCharField(max_length=255, required=False, allow_blank=True, default="",
                                      help_text="The person CI acts for (username or CI login), if known.")
    is_emergency = StrictBooleanField(required=False, default=False)
    justification = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    # The change record; what the environment's policy requires is checked by the service (refusals
    # ticket_required, invalid_ticket, risk_level_required, invalid_risk_level, impact_required,
    # rollback_plan_required).
    ticket = StrictCharField(max_length=100, required=False, allow_blank=True, default="",
                             help_text="The change's ticket reference, e.g. PAY-123 (the policy's ticket pattern).")
    risk_level = StrictCharField(max_length=16, required=False, allow_blank=True, default="",
                                 help_text="low, medium or high.")
    impact = StrictCharField(max_length=5000, required=False, allow_blank=True, default="",
                             help_text="What the change affects.")
    rollback_plan = StrictCharField(max_length=5000, required=False, allow_blank=True, default="",
                                    help_text="How the change is undone if it fails.")



class VerdictSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    approvals = serializers.IntegerField()
    approvals_required = serializers.IntegerField()
    missing_checks = serializers.ListField(child=serializers.CharField())
    failed_checks = serializers.ListField(child=serializers.CharField())


class DecisionOutputSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username")

    class Meta:
        model = Approval
        fields = ["approver", "decision", "comment", "checklist", "policy_version", "policy_sha256",
                  "policy_acknowledged", "created_at"]


APPROVED_STATUSES = {"approved", "deploying", "deployed", "failed"}
# Each ending without a standing approval is its own decision: "rejected" only when someone rejected.
REFUSED_STATUSES = {"rejected", "blocked", "expired", "cancelled", "superseded"}
DECISION_HELP = ("approved while the approval stands (or the deployment ran); otherwise how the request "
                 "ended: rejected (by an approver), blocked (failed checks), expired, cancelled or superseded "
                 "(an approval given earlier is then withdrawn); null while undecided.")


def iso_datetime(value) -> str | None:
    """What DRF's DateTimeField renders: ISO 8601 in the current time zone, UTC as "Z"."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class RequestSerializer(serializers.Serializer):
    """A request as the API shows it (a plain serializer: this is the hot path of CI polling)."""

    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="The request's page on the portal.")
    service = serializers.CharField(source="environment.service.name")
    environment = serializers.CharField(source="environment.name")
    environment_id = serializers.IntegerField()
    sha = serializers.CharField()
    ref = serializers.CharField()
    title = serializers.CharField()
    requester = serializers.SerializerMethodField()
    requester_login = serializers.CharField()
    source = serializers.ChoiceField(choices=RequestSource.choices)
    source_url = serializers.CharField()
    external_ids = serializers.DictField()
    change_authors = serializers.ListField(child=serializers.CharField())
    checks = serializers.DictField(child=serializers.CharField())
    check_provenance = serializers.DictField(
        child=serializers.DictField(),
        help_text="Check name → who reported its latest result: {by, service_account, at}. Where the policy "
        "trusts only CI, a passing check a person reported does not count.",
    )
    ticket = serializers.CharField()
    ticket_url = serializers.CharField(help_text="The ticket's link (from the policy's link template), or empty.")
    risk_level = serializers.CharField(help_text="low, medium, high, or empty when not stated.")
    impact = serializers.CharField()
    rollback_plan = serializers.CharField()
    is_emergency = serializers.BooleanField()
    during_freeze = serializers.BooleanField()
    flagged_for_review = serializers.BooleanField()
    status = serializers.ChoiceField(choices=RequestStatus.choices)
    status_reason = serializers.CharField()
    decision = serializers.SerializerMethodField(help_text=DECISION_HELP)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    approval_expires_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    superseded_by = serializers.IntegerField(source="superseded_by_id", allow_null=True)

    def get_requester(self, obj) -> str | None:
        return obj.requester.username if obj.requester_id else None

    def get_url(self, obj) -> str:
        return absolute_url("deployments:request_detail", obj.pk)

    @extend_schema_field(serializers.ChoiceField(choices=RequestDecision.choices, allow_null=True))
    def get_decision(self, obj) -> str | None:
        if obj.status in APPROVED_STATUSES:
            return "approved"
        if obj.status in REFUSED_STATUSES:
            return obj.status
        return None

    def to_representation(self, obj) -> dict:
        # Written out rather than field by field: CI polls this, and the declared fields above stay
        # the documented contract (schemathesis checks every response against the schema).
        return {
            "id": obj.pk,
            "url": self.get_url(obj),
            "service": obj.environment.service.name,
            "environment": obj.environment.name,
            "environment_id": obj.environment_id,
            "sha": obj.sha,
            "ref": obj.ref,
            "title": obj.title,
            "requester": self.get_requester(obj),
            "requester_login": obj.requester_login,
            "source": obj.source,
            "source_url": obj.source_url,
            "external_ids": obj.external_ids,
            "change_authors": obj.change_authors,
            "checks": obj.checks,
            "check_provenance": obj.check_provenance,
            "ticket": obj.ticket,
            "ticket_url": obj.ticket_url,
            "risk_level": obj.risk_level,
            "impact": obj.impact,
            "rollback_plan": obj.rollback_plan,
            "is_emergency": obj.is_emergency,
            "during_freeze": obj.during_freeze,
            "flagged_for_review": obj.flagged_for_review,
            "status": obj.status,
            "status_reason": obj.status_reason,
            "decision": self.get_decision(obj),
            "created_at": iso_datetime(obj.created_at),
            "updated_at": iso_datetime(obj.updated_at),
            "expires_at": iso_datetime(obj.expires_at),
            "decided_at": iso_datetime(obj.decided_at),
            "approval_expires_at": iso_datetime(obj.approval_expires_at),
            "finished_at": iso_datetime(obj.finished_at),
            "superseded_by": obj.superseded_by_id,
        }


class RequestStatusSerializer(serializers.Serializer):
    """Just what a waiting CI needs: cheap to poll."""

    id = serializers.IntegerField()
    url = serializers.CharField(help_text="The request's page on the portal.")
    status = serializers.ChoiceField(choices=RequestStatus.choices)
    decision = serializers.ChoiceField(choices=RequestDecision.choices, allow_null=True, help_text=DECISION_HELP)
    status_reason = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    approval_expires_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    superseded_by = serializers.IntegerField(allow_null=True, help_text="The newer request that superseded this one.")
    superseded_by_url = serializers.CharField(allow_null=True, help_text="The newer request's page on the portal.")

    def to_representation(self, obj) -> dict:
        newer = obj.superseded_by_id
        return {
            "id": obj.pk,
            "url": RequestSerializer.get_url(self, obj),
            "status": obj.status,
            "decision": RequestSerializer.get_decision(self, obj),
            "status_reason": obj.status_reason,
            "decided_at": iso_datetime(obj.decided_at),
            "approval_expires_at": iso_datetime(obj.approval_expires_at),
            "updated_at": iso_datetime(obj.updated_at),
            "superseded_by": newer,
            "superseded_by_url": absolute_url("deployments:request_detail", newer) if newer else None,
        }


class RequestDetailSerializer(RequestSerializer):
    """Adds the verdict with its reasons, the decisions so far and the policy snapshot.

    Pass ``context={"approvals": [...]}`` to reuse approvals already loaded; otherwise they are read
    from ``obj.approvals``.
    """

    verdict = serializers.SerializerMethodField()
    decisions = serializers.SerializerMethodField()
    policy = serializers.JSONField(source="policy_snapshot")

    def to_representation(self, obj) -> dict:
        data = super().to_representation(obj)
        data["verdict"] = self.get_verdict(obj)
        data["decisions"] = self.get_decisions(obj)
        data["policy"] = obj.policy_snapshot
        return data

    def _approvals(self, obj):
        approvals = self.context.get("approvals")
        return list(obj.approvals.all()) if approvals is None else approvals

    @extend_schema_field(VerdictSerializer)
    def get_verdict(self, obj) -> dict:
        from deployments.gate import services

        verdict = services.verdict_for(obj, self._approvals(obj))
        return {
            "outcome": verdict.outcome,
            "reasons": list(verdict.reasons),
            "approvals": verdict.approvals,
            "approvals_required": verdict.approvals_required,
            "missing_checks": list(verdict.missing_checks),
            "failed_checks": list(verdict.failed_checks),
        }

    @extend_schema_field(DecisionOutputSerializer(many=True))
    def get_decisions(self, obj) -> list:
        return [
            {"approver": a.approver.username, "decision": a.decision, "comment": a.comment,
             "checklist": a.checklist, "policy_version": a.policy_version, "policy_sha256": a.policy_sha256,
             "policy_acknowledged": a.policy_acknowledged, "created_at": iso_datetime(a.created_at)}
            for a in self._approvals(obj)
        ]


class DecideSerializer(StrictInput):
    comment = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    checklist = NamedDictField(child=StrictBooleanField(), required=False, default=dict, max_key_length=300,
                               max_items=50, help_text="Impact checklist item → confirmed.")


class RejectSerializer(DecideSerializer):
    comment = StrictCharField(max_length=5000, help_text="Why; a rejection needs a comment.")


class CancelSerializer(StrictInput):
    reason = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")


class ChecksSerializer(StrictInput):
    checks = NamedDictField(child=serializers.ChoiceField(choices=CheckState.choices), allow_empty=False,
                            max_items=100)


EXECUTION_ALIASES = {"started": ExecutionStatus.IN_PROGRESS, "succeeded": ExecutionStatus.SUCCESS,
                     "failed": ExecutionStatus.FAILURE}


class ExecutionInputSerializer(StrictInput):
    status = serializers.ChoiceField(
        choices=[*ExecutionStatus.values, *EXECUTION_ALIASES],
        help_text="started, succeeded, failed (or queued, in_progress, success, failure, error).",
    )
    sha = StrictCharField(max_length=40, required=False,
                          help_text="The sha actually deployed (default: the request's).")
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    external_id = StrictCharField(max_length=255, required=False, allow_blank=True, default="")

    def validate_status(self, value):
        return EXECUTION_ALIASES.get(value, value)


class ExecutionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request = serializers.IntegerField(source="request_id", allow_null=True)
    sha = serializers.CharField()
    status = serializers.CharField()
    authorized = serializers.BooleanField()
    flag_reason = serializers.CharField()
    url = serializers.CharField()
    external_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_service_account = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.CharField())
    token = serializers.DictField(allow_null=True)
