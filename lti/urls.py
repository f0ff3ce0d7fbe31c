from django.urls import path

from lti import registration, trust_views
from lti.views import instructor, launches, learner

app_name = "lti"

urlpatterns = [
    path("login/", launches.OidcLoginView.as_view(), name="login"),
    path("login/<uuid:registration_uuid>/", launches.OidcLoginView.as_view(), name="login-uuid"),
    path("launch/", launches.LaunchView.as_view(), name="launch"),
    path("jwks/", launches.jwks, name="jwks"),
    path("canvas.json", registration.canvas_configuration, name="canvas-json"),
    path("register/", registration.registration_needs_link, name="register-needs-link"),
    path("register/<str:invite_token>/", registration.dynamic_registration, name="register"),
    path("s/<str:token>/", launches.page, name="page"),
    path("s/<str:token>/answer/", learner.submit, name="submit"),
    path("s/<str:token>/status/", learner.status, name="status"),
    path(
        "s/<str:token>/answers/<uuid:submission_id>/request-review/",
        learner.request_review,
        name="request-review",
    ),
    path("s/<str:token>/deep-link/", launches.deep_link, name="deep-link"),
    path("s/<str:token>/review/", instructor.review, name="review"),
    path("s/<str:token>/model-card/", trust_views.model_card, name="model-card"),
    path("s/<str:token>/review/groups/", instructor.review_groups, name="review-groups"),
    path(
        "s/<str:token>/review/<uuid:submission_id>/",
        instructor.review_submission,
        name="review-one",
    ),
]
