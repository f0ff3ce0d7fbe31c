"""A real LTI launch (OIDC login, signed id_token) whose locale claim picks the page language."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from lti_tool.models import Key

from lti import keys
from tests.factories import DeploymentFactory, ItemFactory, RegistrationFactory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lti"))  # the test platform

from lti_platform import TestPlatform  # noqa: E402

from tests.lti.conftest import Browser  # noqa: E402

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture
def platform(db: None) -> Iterator[TestPlatform]:
    Key.objects.create_from_jwk(JWK.generate(kty="RSA", size=2048))
    p = TestPlatform(name="moodle-de")
    registration = RegistrationFactory(platform=p)
    DeploymentFactory(registration=registration, deployment_id=p.deployment_id)
    keys.signing_key()
    p.tool_jwks = keys.jwks()
    yield p
    p.stop()


@pytest.mark.parametrize(
    ("locale", "expected", "absent"),
    [("de-DE", "Ihre Antwort", "Your answer"), ("en-GB", "Your answer", "Ihre Antwort")],
)
def test_launch_locale_claim_chooses_the_language(platform, locale, expected, absent) -> None:
    ItemFactory(key="item-1", max_score=3)
    browser = Browser()
    presentation = {"return_url": f"{platform.url}/return", "locale": locale}
    url = browser.open(platform, **{CLAIM + "launch_presentation": presentation})
    html = browser.get(url).content.decode()
    assert expected in html and absent not in html
    assert f'<html lang="{locale[:2]}">' in html
