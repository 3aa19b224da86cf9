from django.urls import path

from .people import views as people_views
from .training import views

app_name = "compliance"

urlpatterns = [
    path("policy/", views.policy_current, name="policy_current"),
    path("training/", views.my_training, name="my_training"),
    path("training/courses/<slug:slug>/", views.course_detail, name="course"),
    path("training/matrix/", views.matrix, name="matrix"),
    path("training/matrix.csv", views.matrix_csv, name="matrix_csv"),
    path("training/matrix/remind/", views.matrix_remind, name="matrix_remind"),
    path("access/changes/", people_views.changes, name="access_changes"),
    path("access/changes/<int:pk>/decide/", people_views.decide_change, name="access_change_decide"),
    path("access/reviews/", people_views.reviews, name="access_reviews"),
]
