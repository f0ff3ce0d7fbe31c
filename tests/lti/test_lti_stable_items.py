"""Issue 12, findings 4 and 5: links and open pages name an item by its stable id.

A link placed by deep linking keeps working when the item's key is renamed; a page opened for
an item that was deleted since answers 410 with a clear message, not 500; answers of only
invisible characters are refused as empty on the LTI page.
"""

from __future__ import annotations

import json
import re

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from scoring_plugin.models import Item, Submission
from tests.lti.lti_platform import INSTRUCTOR

pytestmark = pytest.mark.django_db

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def token_of(url: str) -> str:
    match = re.search(r"/lti/s/([^/]+)/", url)
    assert match
    return match.group(1)


def placed_link_custom(browser, platform, item: Item) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What the LMS stores for a link an instructor places with the item picker."""
    url = browser.open(
        platform, sub="teacher-1", roles=[INSTRUCTOR], message_type="LtiDeepLinkingRequest"
    )
    html = browser.post(f"/lti/s/{token_of(url)}/deep-link/", {"item_id": str(item.pk)})
    token = re.search(r'name="JWT" value="([^"]+)"', html.content.decode()).group(1)  # type: ignore[union-attr]
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in browser.get("/lti/jwks/").json()["keys"] if k["kid"] == kid]
    claims = jwt.decode(
        token,
        RSAAlgorithm.from_jwk(json.dumps(key)),
        algorithms=["RS256"],
        audience=platform.issuer,
    )
    (content,) = claims[DL + "content_items"]
    return dict(content["custom"])


def submit(browser, url: str, answer: str):  # type: ignore[no-untyped-def]
    return browser.post(
        f"/lti/s/{token_of(url)}/answer/", {"answer": answer}, HTTP_ACCEPT="application/json"
    )


def test_a_placed_link_keeps_working_after_the_item_key_is_renamed(
    platform, item, make_browser
) -> None:  # type: ignore[no-untyped-def]
    custom = placed_link_custom(make_browser(), platform, item)
    item.key = "item-1-renamed"
    item.save()

    student = make_browser()
    url = student.open(platform, sub="student-1", custom=custom)
    page = student.get(url)
    assert page.status_code == 200
    assert item.prompt in page.content.decode()
    assert submit(student, url, "To put segments in order.").status_code == 201
    assert Submission.objects.get().item == item


def test_an_open_page_keeps_working_when_the_item_key_is_renamed(platform, item, browser) -> None:  # type: ignore[no-untyped-def]
    url = browser.open(platform, sub="student-1", item_key=item.key)
    Item.objects.filter(pk=item.pk).update(key="renamed-while-open")
    assert browser.get(url).status_code == 200
    assert browser.get(f"/lti/s/{token_of(url)}/status/").status_code == 200
    assert submit(browser, url, "To put segments in order.").status_code == 201


def test_an_open_page_for_a_deleted_item_answers_410_with_a_clear_message(
    platform, item, browser
) -> None:  # type: ignore[no-untyped-def]
    url = browser.open(platform, sub="student-1", item_key=item.key)
    item.delete()  # no answers yet, so it may go
    page = browser.get(url)
    assert page.status_code == 410
    assert "no longer in Scorebridge" in page.content.decode()
    status = browser.get(f"/lti/s/{token_of(url)}/status/")
    assert status.status_code == 410 and status.json()["code"] == "item_gone"
    assert submit(browser, url, "To put segments in order.").status_code == 410
    assert Submission.objects.count() == 0


@pytest.mark.parametrize(
    "invisible",
    ["\u200b\u200b\u200b", "\u200d\u2060\ufeff", " \u3164 \u200c ", "\u2800\u034f\u180e"],
)
def test_an_answer_of_only_invisible_characters_is_refused_as_empty(
    platform, item, browser, invisible: str
) -> None:  # type: ignore[no-untyped-def]
    url = browser.open(platform, sub="student-1")
    response = submit(browser, url, invisible)
    assert response.status_code == 400
    assert response.json()["error"].startswith("The answer is empty")
    assert Submission.objects.count() == 0


def test_a_link_naming_a_key_from_before_keys_were_slugs_still_opens_the_item(
    platform, item, browser
) -> None:  # type: ignore[no-untyped-def]
    Item.objects.filter(pk=item.pk).update(key="unit-1-q-2", legacy_key="unit 1/q 2")
    url = browser.open(platform, sub="student-1", custom={"scorebridge_item": "unit 1/q 2"})
    assert browser.get(url).status_code == 200
    assert submit(browser, url, "To put segments in order.").status_code == 201
    assert Submission.objects.get().item_id == item.pk
