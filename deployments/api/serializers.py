"""Input and output shapes of the API. Inputs are strict: unknown fields and wrong types are refused."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..choices import CheckState, Decision, ExecutionStatus, RequestSource, Tier
from ..models import Approval, ApprovalPolicy, DecisionDelivery, DeploymentRequest, Environment, Service


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
    name = StrictCharField(max_length=100)
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
                  "impact_checklist", "version", "updated_at"]
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
    checks = serializers.DictField(
        child=serializers.ChoiceField(choices=CheckState.choices), required=False, default=dict,
        help_text="Check name → state (success, pending, failure, neutral, skipped).",
    )
    source = serializers.ChoiceField(choices=[RequestSource.API, RequestSource.CLI], default=RequestSource.API)
    source_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    external_ids = serializers.DictField(child=StrictCharField(max_length=255, allow_blank=True), required=False,
                                         default=dict, help_text="e.g. the CI run id.")
    requester_login = StrictCharField(max_length=255, required=False, allow_blank=True, default="",
                                      help_text="The person CI acts for (username or CI login), if known.")
    is_emergency = StrictBooleanField(required=False, default=False)
    justification = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")

    def validate_checks(self, value):
        if len(value) > 100:
            raise serializers.ValidationError("At most 100 checks.")
        for name in value:
            if not name or len(name) > 200:
                raise serializers.ValidationError("Check names are 1 to 200 characters.")
        return value


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
        fields = ["approver", "decision", "comment", "checklist", "policy_version", "created_at"]


class DeliveryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = DecisionDelivery
        fields = ["provider", "decision", "status", "attempts", "created_at", "delivered_at", "failed_at"]


APPROVED_STATUSES = {"approved", "deploying", "deployed", "failed"}
REFUSED_STATUSES = {"rejected", "blocked", "expired", "cancelled", "superseded"}


class RequestSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="environment.service.name")
    environment = serializers.CharField(source="environment.name")
    environment_id = serializers.IntegerField()
    requester = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField(help_text="The request's page on the portal.")
    decision = serializers.SerializerMethodField(
        help_text="approved once approval was given, rejected once it can no longer be, otherwise null."
    )

    class Meta:
        model = DeploymentRequest
        fields = ["id", "url", "service", "environment", "environment_id", "sha", "ref", "title", "requester",
                  "requester_login", "source", "source_url", "external_ids", "change_authors", "checks",
                  "is_emergency", "during_freeze", "flagged_for_review", "status", "status_reason", "decision",
                  "created_at", "updated_at", "expires_at", "decided_at", "approval_expires_at", "finished_at",
                  "superseded_by"]

    def get_requester(self, obj) -> str | None:
        return obj.requester.username if obj.requester_id else None

    def get_url(self, obj) -> str:
        return f"{settings.PORTAL_BASE_URL}/requests/{obj.pk}/"

    def get_decision(self, obj) -> str | None:
        if obj.status in APPROVED_STATUSES:
            return "approved"
        if obj.status in REFUSED_STATUSES:
            return "rejected"
        return None


class RequestDetailSerializer(RequestSerializer):
    verdict = serializers.SerializerMethodField()
    decisions = DecisionOutputSerializer(source="approvals", many=True, read_only=True)
    deliveries = DeliveryOutputSerializer(many=True, read_only=True)
    policy = serializers.JSONField(source="policy_snapshot", read_only=True)

    class Meta(RequestSerializer.Meta):
        fields = [*RequestSerializer.Meta.fields, "verdict", "decisions", "deliveries", "policy"]

    @extend_schema_field(VerdictSerializer)
    def get_verdict(self, obj) -> dict:
        from .. import services

        verdict = services.verdict_for(obj, obj.approvals.all())
        return {
            "outcome": verdict.outcome,
            "reasons": list(verdict.reasons),
            "approvals": verdict.approvals,
            "approvals_required": verdict.approvals_required,
            "missing_checks": list(verdict.missing_checks),
            "failed_checks": list(verdict.failed_checks),
        }



class DecideSerializer(StrictInput):
    comment = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    checklist = serializers.DictField(child=StrictBooleanField(), required=False, default=dict,
                                      help_text="Impact checklist item → confirmed.")


class RejectSerializer(DecideSerializer):
    comment = StrictCharField(max_length=5000, help_text="Why; a rejection needs a comment.")


class CancelSerializer(StrictInput):
    reason = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")


class ChecksSerializer(StrictInput):
    checks = serializers.DictField(child=serializers.ChoiceField(choices=CheckState.choices), allow_empty=False)

    def validate_checks(self, value):
        return RequestCreateSerializer().validate_checks(value)


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


class DecisionResultSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    request = RequestDetailSerializer()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_service_account = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.CharField())
    token = serializers.DictField(allow_null=True)
