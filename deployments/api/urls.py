from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from deployments.api import metrics, views
from deployments.api.errors import api_not_found

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("services", views.ServiceViewSet, basename="service")
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("requests", views.RequestViewSet, basename="request")

v1 = [
    path("me/", views.MeView.as_view(), name="me"),
    path("metrics/dora/", metrics.DoraMetricsView.as_view(), name="metrics-dora"),
    path("metrics/approvals/", metrics.ApprovalMetricsView.as_view(), name="metrics-approvals"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
         name="api-schema"),
    # The split view serves its initialisation script from its own URL (?script): no inline script,
    # so the page works under the Content-Security-Policy.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=[],
                                                      permission_classes=[AllowAny]), name="api-docs"),
    # Any path left, a newline (%0A) in it included ("." would not match it: Django's HTML 404).
    re_path(r"^[\s\S]*$", api_not_found),
]
