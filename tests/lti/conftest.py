"""A test LMS platform over real HTTP, and a browser that goes through OIDC login and launch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse
from django.test import Client
from jwcrypto.jwk import JWK
from lti_tool.models import Key

from lti import keys
from scoring_plugin.models import Item
from tests.factories import DeploymentFactory, LtiItemFactory, RegistrationFactory
from tests.lti.lti_platform import TestPlatform
from tests.lti.lti_scoring import CapturedTasks

_TOOL_KEY: list[JWK] = []


@pytest.fixture(autouse=True)
def _tool_key(db: None) -> None:
    """The tool's signing key, generated once per test run."""
    if not _TOOL_KEY:
        _TOOL_KEY.append(JWK.generate(kty="RSA", size=2048))
    Key.objects.create_from_jwk(_TOOL_KEY[0])


@pytest.fixture(autouse=True)
def _clean_lti_cache() -> Iterator[None]:
    caches[settings.LTI_CACHE_ALIAS].clear()
    yield
    caches[settings.LTI_CACHE_ALIAS].clear()


def _start(name: str) -> TestPlatform:
    return TestPlatform(name=name)


@pytest.fixture
def platform(db: None) -> Iterator[TestPlatform]:
    """A registered platform with an active deployment; it knows the tool's JWKS."""
    p = _start("moodle")
    registration = RegistrationFactory(platform=p)
    DeploymentFactory(registration=registration, deployment_id=p.deployment_id)
    keys.signing_key()
    p.tool_jwks = keys.jwks()
    yield p
    p.stop()


@pytest.fixture
def other_platform(db: None) -> Iterator[TestPlatform]:
    p = _start("canvas")
    registration = RegistrationFactory(platform=p)
    DeploymentFactory(registration=registration, deployment_id=p.deployment_id)
    keys.signing_key()
    p.tool_jwks = keys.jwks()
    yield p
    p.stop()


@pytest.fixture
def item(db: None) -> Item:
    return LtiItemFactory(key="item-1", max_score=3, review_threshold=0.6)


@dataclass
class Login:
    state: str
    nonce: str
    redirect_uri: str


class Browser:
    """One user's browser: keeps the tool's cookies, follows the OIDC flow."""

    def __init__(self) -> None:
        self.client = Client()

    def login(self, platform: TestPlatform, **params: str) -> Login:
        query = {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "hint",
            "target_link_uri": "https://testserver/lti/launch/",
            "lti_deployment_id": platform.deployment_id,
            "lti1p3_new_window": "1",  # past pylti1p3's cookie check page
            **params,
        }
        response = self.client.get("/lti/login/", query, secure=True)
        assert response.status_code == 302, response.content
        location = urlsplit(response["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == platform.auth_url
        auth = {k: v[0] for k, v in parse_qs(location.query).items()}
        return Login(auth["state"], auth["nonce"], auth["redirect_uri"])

    def post_launch(self, id_token: str, state: str) -> HttpResponse:
        return self.client.post("/lti/launch/", {"id_token": id_token, "state": state}, secure=True)

    def launch(self, platform: TestPlatform, **claims: object) -> HttpResponse:
        """Login, then post a token the platform signed with the login's nonce."""
        login = self.login(platform)
        token = platform.sign(platform.claims(nonce=login.nonce, **claims))
        return self.post_launch(token, login.state)

    def open(self, platform: TestPlatform, **claims: object) -> str:
        """Launch successfully; return the tool page's URL (it holds the launch token)."""
        response = self.launch(platform, **claims)
        assert response.status_code == 302, response.content.decode()
        return str(response["Location"])

    def get(self, url: str, **kwargs: object) -> HttpResponse:
        return self.client.get(url, secure=True, **kwargs)

    def post(self, url: str, data: dict[str, object], **kwargs: object) -> HttpResponse:
        return self.client.post(url, data, secure=True, **kwargs)


@pytest.fixture
def captured(monkeypatch) -> CapturedTasks:  # type: ignore[no-untyped-def]
    """Grade passback tasks as they are enqueued; ``run_all()`` runs them."""
    from lti import tasks

    captured = CapturedTasks()
    monkeypatch.setattr(tasks.post_score, "apply_async", captured.apply_async)
    return captured


@pytest.fixture
def browser() -> Browser:
    return Browser()


@pytest.fixture
def make_browser():  # type: ignore[no-untyped-def]
    return Browser
