from django.urls import path

from scoring_plugin import api, api_batch, api_privacy, metrics, views

app_name = "scoring"

urlpatterns = [
    path("api/v1/items/", api.ItemList.as_view(), name="api-items"),
    path("api/v1/items/<str:key>/", api.ItemDetail.as_view(), name="api-item"),
    path("api/v1/items/<str:key>/submissions/", api.SubmitAnswer.as_view(), name="api-submit"),
    path("api/v1/submissions/batch/", api_batch.BatchSubmit.as_view(), name="api-submit-batch"),
    path("api/v1/submissions/<uuid:pk>/", api.SubmissionDetail.as_view(), name="api-submission"),
    path(
        "api/v1/submissions/<uuid:pk>/review/",
        api.ReviewSubmission.as_view(),
        name="api-submission-review",
    ),
    path(
        "api/v1/privacy/student-data/export/",
        api_privacy.StudentDataExport.as_view(),
        name="api-student-data-export",
    ),
    path(
        "api/v1/privacy/student-data/erase/",
        api_privacy.StudentDataErase.as_view(),
        name="api-student-data-erase",
    ),
    path(
        "api/v1/audit/decisions/",
        api_privacy.DecisionLogExport.as_view(),
        name="api-decision-log",
    ),
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("items/<int:pk>/try/", views.try_item, name="try-item"),
]
