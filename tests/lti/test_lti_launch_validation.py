"""Each way a launch can be invalid is refused with its own clear error, before anything from
the token is stored."""

from __future__ import annotations

import time

import pytest
from lti_tool.models import LtiDeployment, LtiUser

from lti.models import LtiSubmission, UsedNonce
from tests.lti.lti_platform import INSTRUCTOR, TestPlatform, new_rsa_key

pytestmark = pytest.mark.django_db


def refused(response, code: str, status: int | None = None) -> None:  # type: ignore[no-untyped-def]
    body = response.content.decode()
    assert f'data-code="{code}"' in body, body
    assert "Scorebridge cannot open this activity" in body
    if status is not None:
        assert response.status_code == status
    else:
        assert response.status_code in (400, 403, 404)


def test_valid_launch_opens_the_answer_page(platform, item, browser) -> None:
    url = browser.open(platform)
    page = browser.get(url)
    assert page.status_code == 200
    assert item.prompt in page.content.decode()
    assert LtiUser.objects.filter(sub="student-1").exists()


def test_replayed_id_token_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    token = platform.sign(platform.claims(nonce=login.nonce))
    assert browser.post_launch(token, login.state).status_code == 302
    refused(browser.post_launch(token, login.state), "replayed", 403)
    # a second browser (no cookies) replaying it is refused too, and told it is a replay
    from tests.lti.conftest import Browser

    refused(Browser().post_launch(token, login.state), "replayed", 403)
    assert UsedNonce.objects.count() == 1


def test_signature_by_another_key_with_the_platforms_kid_is_refused(
    platform, item, browser
) -> None:
    login = browser.login(platform)
    _, attacker_pem = new_rsa_key()
    token = platform.sign(platform.claims(nonce=login.nonce), key_pem=attacker_pem)
    refused(browser.post_launch(token, login.state), "bad_signature", 403)


def test_unknown_kid_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    token = platform.sign(platform.claims(nonce=login.nonce), kid="not-published")
    refused(browser.post_launch(token, login.state), "unknown_key", 403)


def test_platform_key_rotation_is_followed(platform, item, browser) -> None:
    assert browser.open(platform)  # the JWKS is now cached
    platform.private_key, platform.private_pem = new_rsa_key()
    platform.kid = "rotated-key"
    assert browser.open(platform)


def test_unregistered_issuer_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce, iss="https://unknown.example")
    refused(browser.post_launch(platform.sign(claims), login.state), "unknown_platform")


def test_wrong_audience_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce, aud="some-other-tool")
    refused(browser.post_launch(platform.sign(claims), login.state), "unknown_platform")


def test_our_client_id_not_first_audience_without_azp_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce, aud=["other-tool", platform.client_id])
    refused(browser.post_launch(platform.sign(claims), login.state), "unknown_platform")


def test_several_audiences_need_azp_naming_the_tool(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce, aud=[platform.client_id, "other-tool"])
    refused(browser.post_launch(platform.sign(claims), login.state), "bad_azp", 403)

    login = browser.login(platform)
    claims = platform.claims(
        nonce=login.nonce, aud=[platform.client_id, "other-tool"], azp=platform.client_id
    )
    assert browser.post_launch(platform.sign(claims), login.state).status_code == 302


def test_azp_naming_another_client_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce, azp="other-tool")
    refused(browser.post_launch(platform.sign(claims), login.state), "bad_azp", 403)


def test_expired_token_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    now = int(time.time())
    claims = platform.claims(nonce=login.nonce, iat=now - 400, exp=now - 200)
    refused(browser.post_launch(platform.sign(claims), login.state), "expired", 403)


def test_token_without_exp_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    del claims["exp"]
    refused(browser.post_launch(platform.sign(claims), login.state), "missing_claim")


def test_token_issued_in_the_future_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    now = int(time.time())
    claims = platform.claims(nonce=login.nonce, iat=now + 3600, exp=now + 7200)
    refused(browser.post_launch(platform.sign(claims), login.state), "issued_in_future", 403)


def test_token_issued_long_ago_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    now = int(time.time())
    claims = platform.claims(nonce=login.nonce, iat=now - 3 * 3600, exp=now + 3600)
    refused(browser.post_launch(platform.sign(claims), login.state), "too_old", 403)


def test_nonce_not_issued_by_the_tool_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce="made-up-nonce")
    refused(browser.post_launch(platform.sign(claims), login.state), "unknown_nonce")


def test_missing_nonce_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    del claims["nonce"]
    refused(browser.post_launch(platform.sign(claims), login.state), "missing_nonce")


def test_state_not_from_this_browser_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    token = platform.sign(platform.claims(nonce=login.nonce))
    refused(browser.post_launch(token, "state-forged"), "bad_state")


def test_launch_without_token_is_refused(platform, browser) -> None:
    refused(browser.post_launch("", "state"), "missing_token")


def test_malformed_token_is_refused(platform, browser) -> None:
    login = browser.login(platform)
    refused(browser.post_launch("not.a-jwt", login.state), "malformed_token")


def test_unknown_deployment_is_recorded_inactive_and_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    claims["https://purl.imsglobal.org/spec/lti/claim/deployment_id"] = "new-deployment"
    refused(browser.post_launch(platform.sign(claims), login.state), "inactive_deployment", 403)
    deployment = LtiDeployment.objects.get(deployment_id="new-deployment")
    assert not deployment.is_active
    assert not LtiUser.objects.exists()  # nothing from the token was stored


def test_deactivated_deployment_is_refused(platform, item, browser) -> None:
    LtiDeployment.objects.update(is_active=False)
    refused(browser.launch(platform), "inactive_deployment", 403)


def test_inactive_registration_is_refused_at_login(platform, browser) -> None:
    from lti_tool.models import LtiRegistration

    LtiRegistration.objects.update(is_active=False)
    response = browser.client.get(
        "/lti/login/",
        {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "x",
            "target_link_uri": "https://testserver/lti/launch/",
            "lti1p3_new_window": "1",
        },
        secure=True,
    )
    refused(response, "bad_login", 400)


def test_unsupported_message_type_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] = "LtiStartProctoring"
    refused(browser.post_launch(platform.sign(claims), login.state), "bad_message_type")


def test_wrong_lti_version_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    claims["https://purl.imsglobal.org/spec/lti/claim/version"] = "1.1"
    refused(browser.post_launch(platform.sign(claims), login.state), "bad_version")


def test_resource_launch_without_resource_link_is_refused(platform, item, browser) -> None:
    login = browser.login(platform)
    claims = platform.claims(nonce=login.nonce)
    del claims["https://purl.imsglobal.org/spec/lti/claim/resource_link"]
    refused(browser.post_launch(platform.sign(claims), login.state), "missing_claim")


def test_student_launch_of_a_link_without_item_is_refused(platform, item, browser) -> None:
    refused(browser.launch(platform, item_key="no-such-item"), "unknown_item", 404)


def test_deep_linking_by_a_student_is_refused(platform, item, browser) -> None:
    refused(browser.launch(platform, message_type="LtiDeepLinkingRequest"), "forbidden", 403)


def test_failed_launch_pages_can_be_framed(platform, browser) -> None:
    response = browser.post_launch("", "state")
    assert "X-Frame-Options" not in response
    assert platform.url in response["Content-Security-Policy"]


def test_failed_launch_does_not_create_submissions(platform: TestPlatform, item, browser) -> None:
    browser.launch(platform, roles=[INSTRUCTOR], iat=0)
    assert not LtiSubmission.objects.exists()


# --- issue 12, finding 5 ---------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_time_claim_sent_as_a_numeric_string_is_a_bad_request(
    claim, platform, item, browser
) -> None:
    login = browser.login(platform)
    now = int(time.time())
    claims = platform.claims(nonce=login.nonce)
    claims[claim] = str(now if claim == "iat" else now + 600)
    refused(browser.post_launch(platform.sign(claims), login.state), "malformed_token", 400)
    assert not UsedNonce.objects.exists()


def test_nonce_of_another_login_is_refused(platform, item, browser) -> None:
    """Both nonces were issued by the tool to this browser, but a launch must bring back the
    nonce of the login that issued its state."""
    first = browser.login(platform)
    second = browser.login(platform)
    token = platform.sign(platform.claims(nonce=first.nonce))
    refused(browser.post_launch(token, second.state), "nonce_state_mismatch", 403)
    assert not UsedNonce.objects.exists()
    # each login's own pair still launches
    token = platform.sign(platform.claims(nonce=second.nonce))
    assert browser.post_launch(token, second.state).status_code == 302
