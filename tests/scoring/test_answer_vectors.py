"""Answer groups from the encoder's vectors: the scoring worker stores the pooled vector each
answer was scored from; groups use them, and TF-IDF for answers without one."""

from __future__ import annotations

import numpy as np

from scoring_plugin.answer_groups import Member, group_members, pack_vector, unpack_vector
from scoring_plugin.models import Submission
from tests.factories import SubmissionFactory
from workers import tasks


def test_the_worker_stores_the_vector_each_answer_was_scored_from(
    trained_item, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    texts = ["tcp udp the layer", "tcp udp the layer", "no data"]
    ids = [str(SubmissionFactory(item=trained_item, text=t, status="queued").pk) for t in texts]
    with django_capture_on_commit_callbacks(execute=True):
        assert set(tasks.score_submissions(ids).values()) == {"scored"}
    rows = {str(s.pk): s for s in Submission.objects.filter(pk__in=ids)}
    vectors = [unpack_vector(rows[pk].embedding) for pk in ids]
    assert all(v is not None and v.dtype == np.float32 for v in vectors)
    first, same, other = vectors
    assert first.shape == same.shape == other.shape and first.shape[0] >= 8
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-2  # stored normalised
    assert np.allclose(first, same, atol=1e-3)  # the same answer, the same vector
    assert not np.allclose(first, other, atol=1e-2)
    members = [
        Member(pk, rows[pk].text, rows[pk].score, rows[pk].confidence, vector=rows[pk].embedding,
               space=str(rows[pk].model_version_id))
        for pk in ids
    ]  # fmt: skip
    assert sorted(map(sorted, group_members(members))) == [[0, 1], [2]]


def _unit(*values: float) -> bytes:
    packed = pack_vector(np.array(values, dtype=np.float32))
    assert packed is not None
    return packed


def test_groups_follow_the_vectors_and_fall_back_to_tfidf_without_them() -> None:
    members = [
        # different words, the same meaning to the encoder: one group
        Member("a", "TCP and UDP", 2, 0.5, vector=_unit(1, 0, 0), space="v1"),
        Member("b", "the two transport protocols", 2, 0.6, vector=_unit(0.99, 0.05, 0), space="v1"),
        # the same words, apart to the encoder: two groups
        Member("c", "light and water", 0, 0.4, vector=_unit(0, 1, 0), space="v1"),
        Member("d", "light and water", 0, 0.4, vector=_unit(0, 0, 1), space="v1"),
        # no vector, or another version's: grouped by their text
        Member("e", "I do not know", 0, 0.3),
        Member("f", "I do not know.", 0, 0.3, vector=_unit(0, 0, 1), space="v0"),
        Member("g", "Routers forward packets", 1, 0.3),
    ]  # fmt: skip
    groups = sorted(sorted(members[i].key for i in g) for g in group_members(members))
    assert groups == [["a", "b"], ["c"], ["d"], ["e", "f"], ["g"]]


def test_a_missing_or_broken_vector_is_not_stored() -> None:
    assert pack_vector(None) is None
    assert pack_vector(np.zeros(4)) is None
    assert pack_vector(np.array([1.0, np.nan])) is None
    packed = pack_vector(np.array([3.0, 4.0]))
    assert packed is not None and len(packed) == 4  # two float16 values
    assert np.allclose(unpack_vector(packed), [0.6, 0.8], atol=1e-3)
    assert unpack_vector(b"") is None and unpack_vector(None) is None
