from django.urls import path

from lti import registration, trust_views, views

app_name = "lti"

urlpatterns = [
    path("login/", views.OidcLoginView.as_view(), name="login"),
    path("login/<uuid:registration_uuid>/", views.OidcLoginView.as_view(), name="login-uuid"),
    path("launch/", views.LaunchView.as_view(), name="launch"),
    path("jwks/", views.jwks, name="jwks"),
    path("canvas.json", registration.canvas_configuration, name="canvas-json"),
    path("register/", registration.registration_needs_link, name="register-needs-link"),
    path("register/<str:invite_token>/", registration.dynamic_registration, name="register"),
    path("s/<str:token>/", views.page, name="page"),
    path("s/<str:token>/answer/", views.submit, name="submit"),
    path("s/<str:token>/status/", views.status, name="status"),
    path(
        "s/<str:token>/answers/<uuid:submission_id>/request-review/",
        views.request_review,
        name="request-review",
    ),
    path("s/<str:token>/deep-link/", views.deep_link, name="deep-link"),
    path("s/<str:token>/review/", views.review, name="review"),
    path("s/<str:token>/model-card/", trust_views.model_card, name="model-card"),
    path("s/<str:token>/review/groups/", views.review_groups, name="review-groups"),
    path("s/<str:token>/review/<uuid:submission_id>/", views.review_submission, name="review-one"),
]
