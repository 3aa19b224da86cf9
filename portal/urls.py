from allauth.account import views as account_views
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from compliance.identity import views as identity_views
from deployments.integrations import webhook_urlpatterns

from . import health, metrics, views

urlpatterns = [
    # before the general API include, which answers 404 for every path it does not know
    path("api/v1/reports/", include("compliance.reports.api_urls")),
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),  # liveness
    path("readyz", health.readyz, name="readyz"),  # readiness: database, broker, migrations, beat
    path("metrics", metrics.metrics_view, name="metrics"),  # Prometheus; denied unless configured
    # Sign-in is django-allauth's (passwords, single sign-on, MFA; docs/sso.md); the portal's older URL
    # names stay, on the same paths.
    path("accounts/login/", account_views.login, name="login"),
    path("accounts/logout/", account_views.logout, name="logout"),
    path("accounts/password/", account_views.password_change, name="password_change"),
    path("accounts/password/done/", TemplateView.as_view(template_name="registration/password_change_done.html"),
         name="password_change_done"),
    # not offered (compliance/identity/views.py): a password the identity provider would not know of
    path("accounts/password/set/", identity_views.password_not_offered, name="account_set_password"),
    path("accounts/password/reset/", identity_views.password_not_offered, name="account_reset_password"),
    path("accounts/", include("allauth.urls")),
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
