"""Report pages, included at ``/reports/`` under the namespace "reports" (index: ``reports:index``)."""

from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("", views.index, name="index"),
    path("bundle.zip", views.bundle, name="bundle"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>.<str:fmt>", views.export, name="export"),
]
