"""Registering platforms (dynamic registration, Canvas JSON) and the tool's keys."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from lti_tool.models import Key, LtiDeployment, LtiRegistration

from lti import keys, outbound
from lti.models import RegistrationInvite
from tests.lti.lti_platform import TestPlatform

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_platform(db):  # type: ignore[no-untyped-def]
    p = TestPlatform(name="moodle45")
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def _private_hosts_allowed(settings):  # type: ignore[no-untyped-def]
    """The test platforms listen on 127.0.0.1; tests that check the refusal turn this off."""
    settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = True


def _invite(**fields: object) -> str:
    fields.setdefault("expires_at", timezone.now() + timedelta(hours=1))
    _, token = RegistrationInvite.create_with_token(**fields)
    return token


def _register(client, platform: TestPlatform, token: str, **params: str):  # type: ignore[no-untyped-def]
    query = {
        "openid_configuration": f"{platform.url}/.well-known/openid-configuration",
        "registration_token": "reg-token",
        **params,
    }
    return client.get(f"/lti/register/{token}/", query, secure=True)


def test_dynamic_registration_registers_the_platform_inactive(new_platform, client) -> None:
    token = _invite(note="moodle 4.5")
    response = _register(client, new_platform, token)
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
    assert registration.is_active is False  # waits for an administrator's approval
    deployment = LtiDeployment.objects.get(registration=registration)
    assert deployment.deployment_id == new_platform.deployment_id
    assert deployment.is_active is False
    invite = RegistrationInvite.objects.get()
    assert invite.used_at is not None and invite.registration == registration
    assert token not in str(RegistrationInvite.objects.values_list())  # only the hash is kept


def test_a_link_made_to_auto_activate_activates(new_platform, client) -> None:
    response = _register(client, new_platform, _invite(auto_activate=True))
    assert response.status_code == 200, response.content
    registration = LtiRegistration.objects.get(issuer=new_platform.issuer)
    assert registration.is_active is True
    assert registration.deployments.get().is_active is True


# --- finding 1: anyone could take over an LMS registration ----------------------------------


def test_registration_without_a_link_is_refused_and_calls_nothing(new_platform, client) -> None:
    response = client.get(
        "/lti/register/",
        {
            "openid_configuration": f"{new_platform.url}/.well-known/openid-configuration",
            "registration_token": "reg-token",
        },
        secure=True,
    )
    assert response.status_code in (403, 404)
    assert new_platform.configuration_requests == 0
    assert not new_platform.registration_requests
    assert not LtiRegistration.objects.exists()
    # a made-up link is no better
    response = _register(client, new_platform, "made-up-token")
    assert response.status_code in (403, 404)
    assert new_platform.configuration_requests == 0
    assert not LtiRegistration.objects.exists()


def test_a_link_works_once_and_not_after_it_expired(new_platform, client) -> None:
    token = _invite()
    assert _register(client, new_platform, token).status_code == 200
    LtiRegistration.objects.all().delete()
    again = _register(client, new_platform, token)
    assert again.status_code == 404
    assert not LtiRegistration.objects.exists()
    expired = _invite(expires_at=timezone.now() - timedelta(seconds=1))
    assert _register(client, new_platform, expired).status_code == 404
    assert len(new_platform.registration_requests) == 1


def test_registration_never_changes_an_existing_registration(new_platform, client) -> None:
    """The takeover: an attacker serves a configuration with the real issuer and client id and
    their own key set and token URLs. The existing (deactivated) registration stays as it was."""
    existing = LtiRegistration.objects.create(
        name="real moodle",
        issuer=new_platform.issuer,
        client_id=new_platform.client_id,
        auth_url="https://lms.example.edu/auth",
        token_url="https://lms.example.edu/token",
        keyset_url="https://lms.example.edu/jwks",
        is_active=False,
    )
    before = LtiRegistration.objects.filter(pk=existing.pk).values().get()
    attacker = f"{new_platform.url}/attacker"
    new_platform.openid_overrides = {
        "jwks_uri": f"{attacker}/jwks",
        "token_endpoint": f"{attacker}/token",
        "authorization_endpoint": f"{attacker}/auth",
    }
    response = _register(client, new_platform, _invite(auto_activate=True))
    assert response.status_code == 400
    after = LtiRegistration.objects.filter(pk=existing.pk).values().get()
    assert after == before  # keys, URLs, is_active: untouched
    assert LtiRegistration.objects.count() == 1
    assert not LtiDeployment.objects.exists()


# --- finding 2: the endpoint was an open request proxy --------------------------------------


def test_private_hosts_are_refused_unless_allowed(new_platform, client, settings) -> None:
    settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = False
    response = _register(client, new_platform, _invite())
    assert response.status_code == 400
    assert new_platform.configuration_requests == 0  # not even the GET was sent
    assert not LtiRegistration.objects.exists()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1"],
)
def test_every_resolved_address_is_checked(address, monkeypatch, settings) -> None:
    settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = False

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            ),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(outbound.OutboundError):
        outbound.request_json("GET", "https://lms.example.edu/.well-known/openid-configuration")


def test_plain_http_is_refused_unless_private_hosts_are_allowed(settings) -> None:
    settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = False
    with pytest.raises(outbound.OutboundError):
        outbound.parse("http://lms.example.edu/x")
    assert outbound.parse("https://lms.example.edu/x").origin == "https://lms.example.edu"


def test_registration_endpoint_must_be_the_configurations_origin(new_platform, client) -> None:
    elsewhere = TestPlatform(name="elsewhere")
    try:
        new_platform.openid_overrides = {"registration_endpoint": f"{elsewhere.url}/register"}
        response = _register(client, new_platform, _invite())
        assert response.status_code == 400
        assert not elsewhere.registration_requests
        assert not new_platform.registration_requests
        assert not LtiRegistration.objects.exists()
    finally:
        elsewhere.stop()


def test_errors_do_not_tell_closed_ports_from_bad_documents(new_platform, client) -> None:
    """A closed port, a listening non-platform and a wrong document read the same."""
    closed = client.get(
        f"/lti/register/{_invite()}/",
        {"openid_configuration": "http://127.0.0.1:9/nothing"},
        secure=True,
    )
    not_json = client.get(
        f"/lti/register/{_invite()}/",
        {"openid_configuration": f"{new_platform.url}/jwks/x"},
        secure=True,
    )
    new_platform.openid_overrides = {"jwks_uri": ""}
    bad_document = _register(client, new_platform, _invite())
    bodies = {r.content.decode() for r in (closed, not_json, bad_document)}
    assert {r.status_code for r in (closed, not_json, bad_document)} == {400}
    assert len(bodies) == 1
    (body,) = bodies
    assert "Connection refused" not in body and "127.0.0.1" not in body
    assert "Cannot read" not in body
    assert not LtiRegistration.objects.exists()


def test_only_active_registrations_join_frame_ancestors(new_platform, client) -> None:
    response = _register(client, new_platform, _invite())
    assert response.status_code == 200
    registration = LtiRegistration.objects.get(issuer=new_platform.issuer)
    csp = client.get("/lti/register/", secure=True)["Content-Security-Policy"]
    assert new_platform.url not in csp  # inactive: not allowed to frame tool pages
    registration.is_active = True
    registration.save()  # the admin approves it
    csp = client.get("/lti/register/", secure=True)["Content-Security-Policy"]
    assert new_platform.url in csp


def test_admin_makes_a_one_time_link(admin_client) -> None:
    response = admin_client.post(
        "/admin/lti/registrationinvite/add/",
        {
            "note": "Moodle",
            "expires_at_0": (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d"),
            "expires_at_1": "12:00:00",
        },
        follow=True,
        secure=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    match = re.search(r'id="registration-link">https://testserver/lti/register/([^/<]+)/<', page)
    assert match, page
    invite = RegistrationInvite.objects.get()
    assert invite.token_hash == RegistrationInvite.hash_token(match.group(1))
    assert invite.auto_activate is False


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


def test_admin_approves_a_registered_platform(new_platform, client, admin_client) -> None:
    assert _register(client, new_platform, _invite()).status_code == 200
    registration = LtiRegistration.objects.get(issuer=new_platform.issuer)
    response = admin_client.post(
        "/admin/lti_tool/ltiregistration/",
        {"action": "approve", "_selected_action": [registration.pk]},
        follow=True,
        secure=True,
    )
    assert response.status_code == 200
    registration.refresh_from_db()
    assert registration.is_active is True
    assert registration.deployments.get().is_active is True
    csp = client.get("/lti/register/", secure=True)["Content-Security-Policy"]
    assert new_platform.url in csp
