"""Registering platforms (dynamic registration, Canvas JSON) and the tool's keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from lti_tool.models import Key, LtiDeployment, LtiRegistration

from lti import keys
from tests.lti.lti_platform import TestPlatform

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_platform(db):  # type: ignore[no-untyped-def]
    p = TestPlatform(name="moodle45")
    yield p
    p.stop()


def test_dynamic_registration_registers_the_platform(new_platform, client, settings) -> None:
    response = client.get(
        "/lti/register/",
        {
            "openid_configuration": f"{new_platform.url}/.well-known/openid-configuration",
            "registration_token": "reg-token",
        },
        secure=True,
    )
    assert response.status_code == 200, response.content
    assert "org.imsglobal.lti.close" in response.content.decode()
    (request,) = new_platform.registration_requests
    assert request["_authorization"] == "Bearer reg-token"
    assert request["initiate_login_uri"] == "https://testserver/lti/login/"
    assert request["redirect_uris"] == ["https://testserver/lti/launch/"]
    assert request["jwks_uri"] == "https://testserver/lti/jwks/"
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in request["scope"]
    registration = LtiRegistration.objects.get(issuer=new_platform.issuer)
    assert registration.client_id == new_platform.client_id
    assert registration.keyset_url == new_platform.jwks_url
    assert registration.token_url == new_platform.token_url
    deployment = LtiDeployment.objects.get(registration=registration)
    assert deployment.deployment_id == new_platform.deployment_id
    assert deployment.is_active is False  # an admin activates it


def test_dynamic_registration_reports_an_unreachable_platform(client) -> None:
    response = client.get(
        "/lti/register/", {"openid_configuration": "http://127.0.0.1:9/nothing"}, secure=True
    )
    assert response.status_code == 400
    assert "Cannot read the platform" in response.content.decode()


def test_canvas_json_configuration(client) -> None:
    config = client.get("/lti/canvas.json", secure=True).json()
    assert config["oidc_initiation_url"] == "https://testserver/lti/login/"
    assert config["target_link_uri"] == "https://testserver/lti/launch/"
    assert config["public_jwk_url"] == "https://testserver/lti/jwks/"
    placements = config["extensions"][0]["settings"]["placements"]
    assert {p["placement"] for p in placements} >= {"assignment_selection", "link_selection"}
    assert any(p["message_type"] == "LtiDeepLinkingRequest" for p in placements)


def test_login_by_post_works_too(client) -> None:
    p = TestPlatform(name="post-login")
    try:
        LtiRegistration.objects.create(
            name="p",
            issuer=p.issuer,
            client_id=p.client_id,
            auth_url=p.auth_url,
            token_url=p.token_url,
            keyset_url=p.jwks_url,
        )
        response = client.post(
            "/lti/login/",
            {
                "iss": p.issuer,
                "client_id": p.client_id,
                "login_hint": "x",
                "target_link_uri": "https://testserver/lti/launch/",
                "lti1p3_new_window": "1",
            },
            secure=True,
        )
        assert response.status_code == 302
        assert response["Location"].startswith(p.auth_url + "?")
    finally:
        p.stop()


def test_rotation_keeps_the_old_key_published_until_its_grace_ends(client, settings) -> None:
    settings.LTI_KEY_GRACE_DAYS = 7
    old = keys.signing_key()
    old_kid = old.as_jwk()["kid"]
    call_command("lti_rotate_keys", stdout=open("/dev/null", "w"))
    new = keys.signing_key()
    assert new.pk != old.pk
    kids = {k["kid"] for k in client.get("/lti/jwks/").json()["keys"]}
    assert kids == {old_kid, new.as_jwk()["kid"]}
    # launches and service tokens are signed by the new key
    registration = LtiRegistration(
        issuer="i", client_id="c", auth_url="http://a", token_url="http://t", keyset_url="http://k"
    )
    assert registration.to_registration().get_kid() == new.as_jwk()["kid"]

    # eight days later the old key has left the JWKS, and the next rotation deactivates it
    Key.objects.filter(pk=new.pk).update(datetime_created=timezone.now() - timedelta(days=8))
    Key.objects.filter(pk=old.pk).update(datetime_created=timezone.now() - timedelta(days=30))
    kids = {k["kid"] for k in client.get("/lti/jwks/").json()["keys"]}
    assert old_kid not in kids
    call_command("lti_rotate_keys", stdout=open("/dev/null", "w"))
    assert not Key.objects.get(pk=old.pk).is_active
    assert Key.objects.get(pk=new.pk).is_active  # still in its grace period
