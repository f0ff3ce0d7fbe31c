"""The LTI client-side postMessage storage for the OIDC state (``lti_storage_target``), through
the Django test client: the browser's part (``lti.put_data``/``lti.get_data``) is played by the
test, reading what the pages ask to store. The real browser runs it in
``test_lti_cross_site_browser.py``."""

from __future__ import annotations

import json
import re

import pytest
from lti_tool.models import LtiUser

from lti import client_storage

pytestmark = pytest.mark.django_db


def json_script(html: str, element_id: str):  # type: ignore[no-untyped-def]
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert match, html
    return json.loads(match.group(1))


def storage_login(browser, platform, target: str = "post_message_forwarding"):  # type: ignore[no-untyped-def]
    response = browser.client.get(
        "/lti/login/",
        {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "hint",
            "target_link_uri": "https://testserver/lti/launch/",
            "lti_deployment_id": platform.deployment_id,
            "lti_storage_target": target,
        },
        secure=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    stored = json_script(html, "sb-storage")
    auth_url = json_script(html, "sb-auth-url")
    nonce = re.search(r"[?&]nonce=([^&]+)", auth_url).group(1)  # type: ignore[union-attr]
    state = re.search(r"[?&]state=([^&]+)", auth_url).group(1)  # type: ignore[union-attr]
    return response, stored, nonce, state


def test_login_stores_the_state_secret_in_the_platform_not_in_a_cookie(platform, browser) -> None:
    response, stored, _, state = storage_login(browser, platform)
    assert not response.cookies
    assert stored["target"] == "post_message_forwarding"
    assert stored["origin"] == platform.url  # the auth URL's origin is the message target
    assert stored["key"] == client_storage.storage_key(state)
    assert len(stored["value"]) >= 40


def test_launch_reads_the_secret_back_then_opens_the_page(platform, item, browser) -> None:
    _, stored, nonce, state = storage_login(browser, platform)
    token = platform.sign(platform.claims(nonce=nonce))
    first = browser.post_launch(token, state)
    assert first.status_code == 200
    html = first.content.decode()
    assert json_script(html, "sb-storage")["key"] == stored["key"]
    assert 'name="lti_storage_secret"' in html
    assert not LtiUser.objects.exists()  # nothing from the token before the state is checked
    response = browser.client.post(
        "/lti/launch/",
        {"id_token": token, "state": state, "lti_storage_secret": stored["value"]},
        secure=True,
    )
    assert response.status_code == 302
    assert browser.get(response["Location"]).status_code == 200


def test_a_wrong_secret_is_bad_state(platform, item, browser) -> None:
    _, _, nonce, state = storage_login(browser, platform)
    token = platform.sign(platform.claims(nonce=nonce))
    response = browser.client.post(
        "/lti/launch/",
        {"id_token": token, "state": state, "lti_storage_secret": "guessed"},
        secure=True,
    )
    assert 'data-code="bad_state"' in response.content.decode()


def test_the_secret_works_once(platform, item, browser, make_browser) -> None:
    _, stored, nonce, state = storage_login(browser, platform)
    token = platform.sign(platform.claims(nonce=nonce))
    data = {"id_token": token, "state": state, "lti_storage_secret": stored["value"]}
    assert browser.client.post("/lti/launch/", data, secure=True).status_code == 302
    again = make_browser().client.post("/lti/launch/", data, secure=True)
    assert 'data-code="replayed"' in again.content.decode()
    assert again.status_code == 403


def test_a_new_window_login_uses_cookies_not_the_platform_storage(platform, browser) -> None:
    response = browser.client.get(
        "/lti/login/",
        {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "hint",
            "target_link_uri": "https://testserver/lti/launch/",
            "lti_storage_target": "_parent",
            "lti1p3_new_window": "1",
        },
        secure=True,
    )
    assert response.status_code == 302
    assert any(name.startswith("lti1p3-state-") for name in response.cookies)
