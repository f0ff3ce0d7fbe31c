"""Scoring records what the decision log needs: the review threshold in force, and the gaming
flags set on submission, both visible through the API."""

from __future__ import annotations

from scoring_plugin.models import Item, Submission
from workers import tasks


def test_scoring_records_the_threshold_and_flags_route_to_review(
    trained_item: Item, api_client
) -> None:  # type: ignore[no-untyped-def]
    Item.objects.filter(pk=trained_item.pk).update(review_threshold=0.05)
    ids = []
    for text in ("tcp udp the network", trained_item.prompt):
        response = api_client.post(
            f"/api/v1/items/{trained_item.key}/submissions/", {"text": text}, format="json"
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    assert tasks.score_submissions(ids) == dict.fromkeys(ids, "scored")
    Item.objects.filter(pk=trained_item.pk).update(review_threshold=0.99)  # changed afterwards
    genuine, copy = (api_client.get(f"/api/v1/submissions/{pk}/").json() for pk in ids)
    assert genuine["flags"] == [] and genuine["needs_review"] is False
    assert copy["flags"] == ["copies_prompt"] and copy["needs_review"] is True
    assert {s.review_threshold for s in Submission.objects.filter(pk__in=ids)} == {0.05}
