"""API views. Configuration: small viewsets. Workflow: explicit actions that each call one service.

Every queryset starts from the one permission layer (``deployments.gate.permissions``), narrowed by
the API token's scope; anything outside it is a 404 that never reveals whether it exists.
"""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.errors import RuleViolation
from compliance.identity.evidence import from_request as authentication_evidence
from compliance.people.roles import Role, has_role, roles_of
from deployments.api import idempotency, tokens
from deployments.api import serializers as s
from deployments.api.authentication import set_audit_actor
from deployments.api.filters import EnvironmentFilter, RequestFilter
from deployments.choices import Action, TokenAction
from deployments.gate import permissions as gate
from deployments.gate import services
from deployments.models import (
    ApiToken,
    Approval,
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    Service,
)
from portal.client import client_ip


def token_of(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None



class TokenAllows(permissions.BasePermission):
    """An API token may be narrowed to some actions; the view names the action each call needs.

    A call the token does not allow is refused (403 ``token_scope``) and recorded as a refusal.
    """

    def has_permission(self, request, view):
        needed = view.token_action(request)
        token = token_of(request)
        if not tokens.token_allows_action(token, needed):
            raise tokens.refuse_token_action(token=token, action=needed, actor=request.user,
                                             ip_address=client_ip(request))
        return True


class AdministratorsWrite(permissions.BasePermission):
    """Configuration: everyone reads what they may see; only administrators change it."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        if not has_role(request.user, Role.ADMINISTRATOR):
            raise exceptions.PermissionDenied("Only administrators change the configuration.", code="not_permitted")
        return True


class PortalAPIMixin:
    """Shared by every API view: authentication, token scope, and the audit actor."""

    permission_classes = [permissions.IsAuthenticated, TokenAllows]
    write_token_action = TokenAction.ADMIN

    def token_action(self, request) -> str:
        if request.method in permissions.SAFE_METHODS:
            return TokenAction.READ
        return getattr(self, "action_token_actions", {}).get(getattr(self, "action", None), self.write_token_action)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.user and request.user.is_authenticated:
            set_audit_actor(request.user)

    def scoped_environments(self):
        return tokens.narrow_environments(token_of(self.request), gate.visible_environments(self.request.user))


class Pagination(LimitOffsetPagination):
    """limit/offset paging; a limit or offset that is not a whole number is a 400, not silently ignored."""

    default_limit = 50
    max_limit = 200

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:  # what paginate_queryset accepts: whole numbers from 0
            parameter["schema"] = {"type": "integer", "minimum": 0}
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        for name in (self.limit_query_param, self.offset_query_param):
            values = request.query_params.getlist(name)
            if len(values) > 1 or (values and not values[0].isdigit()):
                errors[name] = ["A single non-negative whole number."]
        if errors:
            raise exceptions.ValidationError(errors)
        return super().paginate_queryset(queryset, request, view)


# --- who am I (also the trivial endpoint of the benchmark) ------------------------------------


class MeView(PortalAPIMixin, APIView):
    @extend_schema(responses=s.MeSerializer, summary="The authenticated user and token")
    def get(self, request):
        token = token_of(request)
        token_data = None
        if token is not None:
            token_data = {"name": token.name, "prefix": token.prefix, "actions": token.actions,
                          "expires_at": token.expires_at.isoformat() if token.expires_at else None}
        return Response({
            "username": request.user.username,
            "is_service_account": request.user.is_service_account,
            "roles": [str(r) for r in roles_of(request.user)],
            "token": token_data,
        })


# --- configuration ----------------------------------------------------------------------------


class ServiceViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Services (repositories deployed by one CI system)."""

    permission_classes = [*PortalAPIMixin.permission_classes, AdministratorsWrite]
    pagination_class = Pagination
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_serializer_class(self):
        return s.ServiceUpdateSerializer if self.action in ("update", "partial_update") else s.ServiceSerializer

    def get_queryset(self):
        user = self.request.user
        queryset = Service.objects.all()
        if not gate.sees_everything(user):
            queryset = queryset.filter(pk__in=gate.visible_environments(user).values("service_id"))
        token = token_of(self.request)
        if token is not None:
            queryset = queryset.filter(pk__in=self.scoped_environments().values("service_id"))
        return queryset.order_by("name")


class EnvironmentViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         viewsets.GenericViewSet):
    """Deployment targets of a service; creating one also creates its approval policy."""

    permission_classes = [*PortalAPIMixin.permission_classes, AdministratorsWrite]
    pagination_class = Pagination
    filterset_class = EnvironmentFilter

    def get_serializer_class(self):
        return s.EnvironmentCreateSerializer if self.action == "create" else s.EnvironmentSerializer

    def get_queryset(self):
        return self.scoped_environments().select_related("service", "policy").order_by("service__name", "name")

    @extend_schema(request=s.EnvironmentCreateSerializer, responses={201: s.EnvironmentSerializer})
    def create(self, request, *args, **kwargs):
        serializer = s.EnvironmentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = Service.objects.filter(name=data["service"]).first()
        if service is None:  # a well-formed name that names nothing: not found, not malformed
            raise RuleViolation("unknown_service", f"No service named {data['service']}.", status_code=404)
        try:
            environment = services.create_environment(
                actor=request.user, service=service, name=data["name"], tier=data["tier"]
            )
        except IntegrityError as exc:
            raise RuleViolation(
                "environment_exists", f"{service.name} already has an environment named {data['name']}."
            ) from exc
        environment = Environment.objects.select_related("service", "policy").get(pk=environment.pk)
        return Response(s.EnvironmentSerializer(environment).data, status=status.HTTP_201_CREATED)


class PolicyViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                    viewsets.GenericViewSet):
    """Approval policies; every change bumps the version (open requests keep their snapshot)."""

    permission_classes = [*PortalAPIMixin.permission_classes, AdministratorsWrite]
    serializer_class = s.PolicySerializer
    pagination_class = Pagination

    def get_queryset(self):
        return (ApprovalPolicy.objects.filter(environment__in=self.scoped_environments().values("pk"))
                .select_related("environment__service")
                .order_by("environment__service__name", "environment__name"))

    def perform_update(self, serializer):
        serializer.instance = services.update_policy(
            actor=self.request.user, approval_policy=serializer.instance, **serializer.validated_data
        )


# --- deployment requests --------------------------------------------------------------------


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="A unique key per logical request: a retry with the same key and body gets the original "
                "response; the same key with another body is refused (422).",
)


@extend_schema_view(
    list=extend_schema(summary="List the deployment requests you may see"),
    retrieve=extend_schema(summary="One request: status, verdict with reasons, decisions (poll this)"),
)
class RequestViewSet(PortalAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deployment requests: create, list, read, and the workflow actions on one request."""

    pagination_class = Pagination
    filterset_class = RequestFilter
    idempotent_create = True
    action_token_actions = {
        "create": TokenAction.REQUEST,
        "checks": TokenAction.REQUEST,
        "cancel": TokenAction.CANCEL,
        "approve": TokenAction.DECIDE,
        "reject": TokenAction.DECIDE,
        "executions": TokenAction.EXECUTE,
    }

    def get_serializer_class(self):
        return s.RequestSerializer if self.action == "list" else s.RequestDetailSerializer

    def get_queryset(self):
        user = self.request.user
        queryset = gate.visible_requests(user)
        token = token_of(self.request)
        if token is not None:
            queryset = queryset.filter(
                environment__in=tokens.narrow_environments(token, Environment.objects.all()).values("pk")
            )
        queryset = queryset.select_related("environment__service", "requester")
        return queryset.order_by("-created_at", "-id")

    def _detail(self, pk: int, code: int = status.HTTP_200_OK) -> Response:
        self.kwargs["pk"] = str(pk)
        return Response(self._represent(self.get_object()), status=code)

    # -- create, idempotently --

    @extend_schema(request=s.RequestCreateSerializer, responses={201: s.RequestDetailSerializer},
                   parameters=[IDEMPOTENCY_HEADER], summary="Ask for permission to deploy a commit")
    def create(self, request, *args, **kwargs):
        serializer = s.RequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return self._submit(serializer.validated_data)
        if len(key) > 255 or not key.isprintable():
            raise exceptions.ValidationError({"Idempotency-Key": ["At most 255 printable characters."]})
        body_hash = hashlib.sha256(json.dumps(request.data, sort_keys=True).encode()).hexdigest()
        return idempotency.create_once(user=request.user, key=key, body_hash=body_hash,
                                       submit=lambda: self._submit(serializer.validated_data))

    def _submit(self, data) -> Response:
        actor = self.request.user
        environment = services.find_environment(actor=actor, service=data["service"], environment=data["environment"])
        if not tokens.token_allows_environment(token_of(self.request), environment):
            violation = RuleViolation(
                "unknown_environment",
                f"No environment {data['service']}/{data['environment']} you may request deployments to.",
                status_code=404,
            )
            services.record_refusal(actor=actor, action=Action.SUBMIT, violation=violation,
                                    ip_address=client_ip(self.request))
            raise violation
        # Only CI names someone else as the requester; the service matches the name to a person.
        requester_login = data["requester_login"] if actor.is_service_account else ""
        created = services.submit_request(
            actor=actor,
            environment=environment,
            sha=data["sha"],
            ref=data["ref"],
            source=data["source"],
            requester_login=requester_login,
            source_url=data["source_url"],
            external_ids=data["external_ids"],
            title=data["title"],
            change_authors=data["change_authors"],
            checks=data["checks"],
            is_emergency=data["is_emergency"],
            justification=data["justification"],
            ticket=data["ticket"],
            risk_level=data["risk_level"],
            impact=data["impact"],
            rollback_plan=data["rollback_plan"],
            ip_address=client_ip(self.request),
        )
        response = self._detail(created.pk, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/requests/{created.pk}/"
        return response

    # -- workflow actions on one request --

    def _require_request_permission(self, target: DeploymentRequest, action: str) -> None:
        """Recording checks or an execution needs the right to request deployments to the environment."""
        if not gate.can_act(self.request.user, gate.REQUEST, target.environment):
            violation = RuleViolation(
                "not_permitted", f"You may not report for {target.environment}.", status_code=403
            )
            services.record_refusal(actor=self.request.user, action=action, violation=violation, request=target,
                                    ip_address=client_ip(self.request))
            raise violation

    @extend_schema(request=s.CancelSerializer, responses=s.RequestDetailSerializer,
                   summary="Withdraw a request (requester or administrator)")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        target = self.get_object()
        data = self._input(s.CancelSerializer)
        services.cancel_request(actor=request.user, request=target, reason=data["reason"],
                                ip_address=client_ip(request))
        return self._detail(target.pk)

    @extend_schema(request=s.DecideSerializer, responses=s.RequestDetailSerializer, summary="Approve (approvers)")
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        target = self.get_object()
        data = self._input(s.DecideSerializer)
        services.approve_request(actor=request.user, request=target, comment=data["comment"],
                                 checklist=data["checklist"], ip_address=client_ip(request),
                                 authentication=authentication_evidence(request))
        return self._detail(target.pk)

    @extend_schema(request=s.RejectSerializer, responses=s.RequestDetailSerializer, summary="Reject (approvers)")
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        target = self.get_object()
        data = self._input(s.RejectSerializer)
        services.reject_request(actor=request.user, request=target, comment=data["comment"],
                                checklist=data["checklist"], ip_address=client_ip(request),
                                authentication=authentication_evidence(request))
        return self._detail(target.pk)

    @extend_schema(request=s.ChecksSerializer, responses=s.RequestDetailSerializer,
                   summary="Record check results (CI)")
    @action(detail=True, methods=["post"])
    def checks(self, request, pk=None):
        target = self.get_object()
        data = self._input(s.ChecksSerializer)
        self._require_request_permission(target, Action.RECORD_CHECKS)
        services.record_checks(actor=request.user, request=target, checks=data["checks"],
                               ip_address=client_ip(request))
        return self._detail(target.pk)

    @extend_schema(request=s.ExecutionInputSerializer, responses={201: s.ExecutionOutputSerializer},
                   summary="Report a deployment the CI started or finished")
    @action(detail=True, methods=["post"])
    def executions(self, request, pk=None):
        target = self.get_object()
        data = self._input(s.ExecutionInputSerializer)
        self._require_request_permission(target, Action.EXECUTE)
        execution = services.report_execution(
            actor=request.user, environment=target.environment, sha=data.get("sha") or target.sha,
            status=data["status"], request=target, external_id=data["external_id"], url=data["url"],
            ip_address=client_ip(request),
        )
        return Response(s.ExecutionOutputSerializer(execution).data, status=status.HTTP_201_CREATED)

    def _input(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def get_object(self, *, related=("environment__service", "requester")):
        """One request by id, checked with the one-object form of the permission layer (fast for polling)."""
        pk = self.kwargs.get("pk")
        if not str(pk).isdigit():
            raise exceptions.NotFound("Not found.")
        found = (
            gate.with_direct_grant(DeploymentRequest.objects.filter(pk=int(pk)), self.request.user)
            .select_related(*related)
            .first()
        )
        if (
            found is None
            or not tokens.token_allows_environment(token_of(self.request), found.environment)
            or not gate.can_view_request(self.request.user, found)
        ):
            raise exceptions.NotFound("Not found.")
        return found

    @extend_schema(responses=s.RequestStatusSerializer,
                   summary="Just the status and decision of one request (what a waiting CI polls)")
    @action(detail=True, methods=["get"], url_path="status")
    def status_only(self, request, pk=None):
        found = self.get_object(related=("environment",))
        return Response(s.RequestStatusSerializer(found).data)

    @extend_schema(responses=OpenApiTypes.OBJECT,
                   summary="One change's whole story: request, change record, change set, checks, decisions, "
                           "delivery, executions, violations and the audit-chain links (evidence)")
    @action(detail=True, methods=["get"], url_path="story")
    def story(self, request, pk=None):
        from compliance.reports.registry import Filters
        from compliance.reports.services import record_export
        from deployments.evidence.story import change_story

        found = self.get_object()
        if not gate.sees_everything(request.user):
            raise RuleViolation("not_permitted", "A change's whole story is for auditors and administrators.",
                                status_code=403)
        record_export(actor=request.user, report="change-story", fmt="json", filters=Filters(), channel="api",
                      ip_address=client_ip(request))
        return Response(change_story(found))

    def retrieve(self, request, *args, **kwargs):
        found = self.get_object()
        return Response(self._represent(found))

    def _represent(self, found: DeploymentRequest) -> dict:
        approvals = list(
            Approval.objects.filter(request_id=found.pk).select_related("approver").order_by("created_at", "id")
        )
        return s.RequestDetailSerializer(found, context={"approvals": approvals}).data
