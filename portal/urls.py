from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from deployments.integrations import webhook_urlpatterns

from . import health, metrics, views

urlpatterns = [
    # before the general API include, which answers 404 for every path it does not know
    path("api/v1/reports/", include("compliance.reports.api_urls")),
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),  # liveness
    path("readyz", health.readyz, name="readyz"),  # readiness: database, broker, migrations, beat
    path("metrics", metrics.metrics_view, name="metrics"),  # Prometheus; denied unless configured
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("api/", include("deployments.api.urls")),
    # SCIM 2.0 provisioning by the identity provider (compliance/people/scim.py; bearer token)
    path("scim/v2/", include("django_scim.urls", namespace="scim")),
    # each installed CI integration's webhook receivers (deployments.integrations registry)
    path("webhooks/", include(webhook_urlpatterns())),
    path("", include("deployments.urls")),
    path("", include("compliance.urls")),
    path("monitoring/", include("compliance.monitoring.urls")),
    # Auditor reports: namespace "reports" (index "reports:index"), API under "reports_api".
    path("reports/", include("compliance.reports.urls")),
]
