"""Issue 12, finding 4: every state-changing admin action declares the permission it needs.

A view-only staff user (every ``view_*`` permission, nothing else) is offered none of them and
a POST that runs each one anyway changes nothing; a user given the permission can run them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core import serializers
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from lti.models import ItemLtiSettings, LtiSubmission, RegistrationInvite, UsedNonce
from scoring_plugin import audit
from scoring_plugin.models import AuditLog, ModelVersion, Submission, UnscoredAnswer
from scoring_plugin.tokens import ApiToken
from tests.factories import (
    ModelVersionFactory,
    ScoredAnswerFactory,
    SubmissionFactory,
    UserFactory,
)

APPS = ("scoring_plugin", "lti", "lti_tool")
# Every action the issue names must be among those checked (a renamed action fails here).
NAMED = {
    ("item", "train_head"),
    ("item", "train_lora"),
    ("item", "train_full"),
    ("item", "merge_gw"),
    ("item", "roll_back"),
    ("item", "retrain_with_reviewed"),
    ("modelversion", "activate"),
    ("modelversion", "cancel"),
    ("modelversion", "distill"),
    ("modelversion", "merge_gw"),
    ("modelversion", "archive"),
    ("submission", "rescore"),
    ("ltisubmission", "send_again"),
    ("ltiregistration", "approve"),
    ("ltiregistration", "deactivate"),
}
READ_ONLY_ACTIONS = {("submission", "export_csv")}


def registered_admins() -> list[tuple[type, admin.ModelAdmin]]:
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in APPS
    ]


def all_actions() -> list[tuple[str, str]]:
    found = []
    for model, model_admin in registered_admins():
        for _func, name, _description in model_admin._get_base_actions():
            found.append((model._meta.model_name, name))
    return sorted(found)


STATE_CHANGING = [a for a in all_actions() if a not in READ_ONLY_ACTIONS]


def snapshot() -> str:
    """Every row of the two apps' models, serialized: equal snapshots mean nothing changed."""
    rows = []
    for label in APPS:
        for model in apps.get_app_config(label).get_models():
            rows.append(serializers.serialize("json", model.objects.order_by("pk")))
    return "\n".join(rows)


@pytest.fixture
def world(course, item):  # type: ignore[no-untyped-def]
    """An item with answers, an active and an inactive ready version, a pending one, a failed
    and a scored LTI answer: something for every action to change."""
    for i in range(12):
        ScoredAnswerFactory(item=item, response_key=f"r{i}", score=i % 3)
    active = ModelVersionFactory(item=item, number=1, is_active=True)
    ModelVersionFactory(item=item, number=2)
    ModelVersionFactory(item=item, number=3, status=ModelVersion.Status.PENDING)
    failed = SubmissionFactory(item=item, status="failed", error="boom")
    scored = SubmissionFactory(item=item, status="scored", score=1, model_version=active)
    user = course.user("student-1")
    for submission in (failed, scored):
        LtiSubmission.objects.create(
            submission=submission,
            context=course.context,
            resource_link=course.link,
            lti_user=user,
            line_item_url="https://course.example/lineitems/1",
        )
    audit.record(AuditLog.Action.ACTIVATE, "admin:someone", model_version=active)
    ItemLtiSettings.objects.create(item=item)
    UnscoredAnswer.objects.create(item=item, response_key="u1", text="waits for a human score")
    ApiToken.create_for(UserFactory(username="api-client"), name="client")
    RegistrationInvite.create_with_token(expires_at=timezone.now() + timedelta(days=1))
    UsedNonce.objects.create(
        issuer="https://course.example", nonce="n1", expires_at=scored.created_at
    )
    return item


def staff_with(*codenames: str):  # type: ignore[no-untyped-def]
    user = UserFactory(username="viewer-" + "-".join(codenames)[:80], is_staff=True)
    view = Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_")
    user.user_permissions.add(*view, *Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def viewer_client(client, world):  # type: ignore[no-untyped-def]
    client.force_login(staff_with())
    return client


def test_every_named_action_is_checked_and_declares_a_permission() -> None:
    assert NAMED <= set(all_actions())
    for model, model_admin in registered_admins():
        for func, name, _ in model_admin._get_base_actions():
            declared = set(getattr(func, "allowed_permissions", ()))
            if (model._meta.model_name, name) in READ_ONLY_ACTIONS:
                assert declared == {"view"}
            else:
                assert declared and declared != {"view"}, f"{model.__name__}.{name}"


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(("model_name", "action"), STATE_CHANGING)
def test_a_view_only_user_cannot_run_the_action(
    viewer_client, model_name: str, action: str, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    app_label = next(
        m._meta.app_label for m, _ in registered_admins() if m._meta.model_name == model_name
    )
    model = apps.get_model(app_label, model_name)
    model_admin = admin.site._registry[model]
    url = reverse(f"admin:{app_label}_{model_name}_changelist")

    page = viewer_client.get(url)
    assert page.status_code == 200  # the user may look
    request = RequestFactory().get(url)
    request.user = page.wsgi_request.user
    assert action not in model_admin.get_actions(request), "offered to a view-only user"

    selected = list(model.objects.values_list("pk", flat=True))
    assert selected
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = viewer_client.post(
            url,
            {
                "action": action,
                "_selected_action": selected,
                "index": "0",
                "post": "yes",  # delete_selected's confirmation
                "apply": "1",  # the merge page's "Start merging"
                "group_size": "2",
                "feature_answers": "8",
            },
        )
    assert response.status_code < 500, response.status_code
    assert snapshot() == before, f"{model_name}.{action} changed rows for a view-only user"
    assert enqueued == [], "work was queued"


@pytest.mark.django_db(transaction=False)
def test_a_view_only_user_cannot_use_the_activate_rollback_and_import_views(
    viewer_client, world
) -> None:  # type: ignore[no-untyped-def]
    inactive = world.model_versions.get(number=2)
    before = snapshot()
    activate = reverse("admin:scoring_plugin_modelversion_activate", args=[inactive.pk])
    rollback = reverse("admin:scoring_plugin_item_rollback", args=[world.pk])
    assert viewer_client.post(activate).status_code == 403
    assert viewer_client.post(rollback).status_code == 403
    assert viewer_client.get("/admin/scoring_plugin/item/import/").status_code == 403
    assert snapshot() == before
    page = viewer_client.get(reverse("admin:scoring_plugin_item_change", args=[world.pk]))
    assert page.status_code == 200
    assert "sb-activate" not in page.content.decode()  # no Activate button offered
    assert "rollback-form" not in page.content.decode()


@pytest.mark.django_db(transaction=False)
def test_users_given_the_permission_can_run_the_actions(
    client, world, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    trainer = staff_with("train_item")
    client.force_login(trainer)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            reverse("admin:scoring_plugin_item_changelist"),
            {"action": "train_head", "_selected_action": [world.pk]},
        )
    assert world.model_versions.count() == 4

    client.force_login(staff_with("activate_modelversion"))
    second = world.model_versions.get(number=2)
    client.post(
        reverse("admin:scoring_plugin_modelversion_changelist"),
        {"action": "activate", "_selected_action": [second.pk]},
    )
    assert world.active_version == second

    client.force_login(staff_with("rescore_submission"))
    failed = Submission.objects.get(status="failed")
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        client.post(
            reverse("admin:scoring_plugin_submission_changelist"),
            {"action": "rescore", "_selected_action": [failed.pk]},
        )
    failed.refresh_from_db()
    assert failed.status == "received" and failed.error == "" and len(enqueued) == 1
