"""Fixtures for the page tests: an admin, LTI launches made directly (no platform round trip),
a tiny in-process backbone, captured grade passback, and headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from lti_tool.models import LtiContext, LtiDeployment, LtiRegistration, LtiResourceLink, LtiUser

from lti import sessions
from lti.views.launches import remember_locale
from scoring_plugin.models import Item
from tests.factories import ItemFactory, UserFactory
from workers import engine_host

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
)


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    caches[settings.LTI_CACHE_ALIAS].clear()
    caches["default"].clear()  # throttling counters
    yield
    caches[settings.LTI_CACHE_ALIAS].clear()


@pytest.fixture
def admin_user(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    user.set_password("admin-password-1")
    user.save()
    return user


@pytest.fixture
def staff_client(client, admin_user):  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    return client


class Course:
    """One platform, deployment and course with a resource link for ``item``."""

    def __init__(self, item: Item, name: str = "course") -> None:
        self.item = item
        self.registration = LtiRegistration.objects.create(
            name=name,
            issuer=f"https://{name}.example",
            client_id=f"{name}-client",
            auth_url=f"https://{name}.example/auth",
            token_url=f"https://{name}.example/token",
            keyset_url=f"https://{name}.example/jwks",
        )
        self.deployment = LtiDeployment.objects.create(
            registration=self.registration, deployment_id="d1", is_active=True
        )
        self.context = LtiContext.objects.create(
            deployment=self.deployment, id_on_platform=f"{name}-ctx"
        )
        self.link = LtiResourceLink.objects.create(
            context=self.context, id_on_platform=f"{name}-link"
        )

    def user(self, sub: str, name: str = "") -> LtiUser:
        user, _ = LtiUser.objects.get_or_create(
            registration=self.registration, sub=sub, defaults={"name": name}
        )
        return user

    def launch(
        self, sub: str, *, instructor: bool = False, name: str = "", locale: str = ""
    ) -> str:
        """A stored launch session for the user; returns its token."""
        user = self.user(sub, name)
        session = sessions.LaunchSession(
            message_type="LtiResourceLinkRequest",
            registration_id=self.registration.pk,
            deployment_id=self.deployment.pk,
            context_id=self.context.pk,
            user_id=user.pk,
            is_instructor=instructor,
            is_learner=not instructor,
            resource_link_id=self.link.pk,
            item_key=self.item.key,
            line_item_url=f"https://{self.registration.name}.example/lineitems/1",
            ags_scopes=["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
        )
        token = sessions.save(session)
        if locale:
            remember_locale(token, {"locale": locale}, {})
        return token


@pytest.fixture
def item(db) -> Item:  # type: ignore[no-untyped-def]
    return ItemFactory(key="transport", max_score=2, review_threshold=0.6)


@pytest.fixture
def course(item: Item) -> Course:
    return Course(item)


@pytest.fixture
def make_course():  # type: ignore[no-untyped-def]
    return Course


@pytest.fixture
def passback(monkeypatch):  # type: ignore[no-untyped-def]
    """Grade passback tasks as they are enqueued (submission ids)."""
    from lti import tasks

    sent: list[str] = []
    monkeypatch.setattr(
        tasks.post_score, "apply_async", lambda args, **options: sent.append(args[0])
    )
    return sent


@pytest.fixture
def scoring_settings(settings, tiny_backbone: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    engine_host.reset()
    yield settings
    engine_host.reset()


# --- Browser --------------------------------------------------------------------------------


def _find(name: str, *candidates: str) -> str:
    for candidate in (os.environ.get(name, ""), *candidates):
        if candidate and Path(candidate).exists():
            return candidate
        if candidate and shutil.which(candidate):
            return str(shutil.which(candidate))
    return ""


def start_chrome(prefs: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    """Headless Chromium through chromedriver (Debian's chromium + chromium-driver), with
    profile ``prefs`` (e.g. cookie settings)."""
    binary = _find("CHROMIUM_BINARY", "/usr/bin/chromium", "chromium", "chromium-browser")
    driver_path = _find("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
    if not binary or not driver_path:
        pytest.fail(
            "Browser tests need Chromium and chromedriver: "
            "apt-get update && apt-get install -y chromium chromium-driver "
            "(or set CHROMIUM_BINARY and CHROMEDRIVER).",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    if prefs:
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.implicitly_wait(0)
    return driver


@pytest.fixture
def chrome():  # type: ignore[no-untyped-def]
    """Headless Chromium through chromedriver (Debian's chromium + chromium-driver)."""
    driver = start_chrome()
    yield driver
    driver.quit()
