"""A student's data on request: find, export, and erase or pseudonymise everything held about one
LMS user. The admin page, the API and the ``student_data`` command all call this module.

The handle is the LMS user id (the LTI ``sub``) with its platform's issuer. What is held about a
student:

* LTI identity: ``LtiUser`` rows (id, names, email, picture) and course memberships;
* answers: ``Submission`` rows linked through ``LtiSubmission`` (or carrying the student's
  ``client_reference``), with scores, probabilities, reviews, overrides and feedback comments;
* training copies: ``ScoredAnswer`` rows copied from their reviewed submissions;
* audit entries about their answers (override comments live in the entry's details), and
  entries whose actor is their LTI identity;
* files under the artifacts folder that contain their text (text files are redacted in place;
  binary files, e.g. model weights, are reported, never silently kept or broken), and with an
  S3 store the stored artifacts likewise (a redacted one is stored again with its new hash).

Erasure writes one audit entry with counts and a salted hash of the handle, never the content.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from lti_tool.models import LtiMembership, LtiUser

from ml_core.artifact_store import ArtifactStoreError, is_document
from scoring_plugin.audit import record
from scoring_plugin.lms_user_data import answer_links
from scoring_plugin.models import AuditLog, ScoredAnswer, Submission
from scoring_plugin.review import REVIEW_KEY_PREFIX

logger = logging.getLogger(__name__)

ERASED_TEXT = "[erased]"
# Files under the artifacts folder whose content can be rewritten without breaking a model.
TEXT_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt", ".md"}
# Shorter answer texts ("TCP") would match unrelated files; ids and names this short likewise.
MIN_TEXT_NEEDLE = 12
MIN_ID_NEEDLE = 4
MODES = ("erase", "pseudonymise")


@dataclass(frozen=True)
class StudentHandle:
    """One LMS user: the LTI ``sub`` and, where two platforms could share it, the issuer."""

    lms_user_id: str
    issuer: str = ""

    def label(self) -> str:
        return f"{self.issuer or '*'} {self.lms_user_id}"


def handle_hash(issuer: str, lms_user_id: str) -> str:
    """A salted hash of the handle: whoever knows the handle (and the salt) can confirm an
    erasure from the audit log; the log alone does not say who it was."""
    salt = (settings.SCOREBRIDGE_PRIVACY_SALT or settings.SECRET_KEY).encode()
    return hmac.new(salt, f"{issuer}\n{lms_user_id}".encode(), hashlib.sha256).hexdigest()


@dataclass
class StudentRecords:
    """Every row held about one student, found once and used by export and erasure."""

    handle: StudentHandle
    users: list[LtiUser]
    memberships: list[LtiMembership]
    submissions: list[Submission]
    # per registered app (scoring_plugin.lms_user_data): its row for each answer, by answer id
    links: dict[str, Mapping[str, object]]
    training_copies: list[ScoredAnswer]
    audit_entries: list[AuditLog]
    overrides_made: list[Submission]

    @property
    def issuer(self) -> str:
        return self.handle.issuer or (self.users[0].registration.issuer if self.users else "")

    def needles(self) -> tuple[list[str], list[str]]:
        """(identifiers, answer texts) to look for in files, long enough not to match noise."""
        ids = {self.handle.lms_user_id}
        for user in self.users:
            ids |= {user.sub, user.name, user.given_name, user.family_name, user.email}
            ids.add(user.lti1p1_id_on_platform or "")
        texts = {s.text for s in self.submissions} | {s.review_comment for s in self.submissions}
        return (
            sorted(i for i in ids if len(i) >= MIN_ID_NEEDLE),
            sorted(t for t in texts if len(t.strip()) >= MIN_TEXT_NEEDLE),
        )


def find_users(handle: StudentHandle) -> list[LtiUser]:
    """The LTI identities of the handle; ``ValidationError`` if none, or if two platforms hold
    the id and no issuer says which."""
    if not handle.lms_user_id:
        raise ValidationError("Give the LMS user id.")
    users = LtiUser.objects.select_related("registration").filter(sub=handle.lms_user_id)
    if handle.issuer:
        users = users.filter(registration__issuer=handle.issuer)
    found = list(users)
    issuers = sorted({u.registration.issuer for u in found})
    if len(issuers) > 1:
        raise ValidationError(
            f"LMS user {handle.lms_user_id!r} exists on several platforms "
            f"({', '.join(issuers)}); give the issuer."
        )
    return found


def _reviewer_names(users: Iterable[LtiUser]) -> list[str]:
    """How ``apply_override`` names these users as reviewers (``lti:<name or sub>``)."""
    return sorted({f"lti:{u.name or u.sub}" for u in users} | {f"lti:{u.sub}" for u in users})


def collect(handle: StudentHandle) -> StudentRecords:
    """Everything held about ``handle`` (raises ``ValidationError`` when nothing is)."""
    users = find_users(handle)
    references = [f"lti:{u.registration_id}:{u.sub}" for u in users]
    links = {provider.name: provider.find(users) for provider in answer_links()}
    linked = {pk for rows in links.values() for pk in rows}
    submissions = list(
        Submission.objects.select_related("item", "model_version__item")
        .filter(Q(pk__in=list(linked)) | Q(client_reference__in=references))
        .order_by("created_at")
    )
    if not users and not submissions:
        raise ValidationError(f"Nothing is held about LMS user {handle.label()}.")
    ids = [s.pk for s in submissions]
    training = list(
        ScoredAnswer.objects.select_related("item").filter(
            response_key__in=[f"{REVIEW_KEY_PREFIX}{pk}" for pk in ids]
        )
    )
    actors = {f"lti:{u.sub}" for u in users} | {f"lti:{u.name}" for u in users if u.name}
    entries = list(
        AuditLog.objects.filter(Q(submission_id__in=ids) | Q(actor__in=actors)).order_by("pk")
    )
    return StudentRecords(
        handle=handle,
        users=users,
        memberships=list(
            LtiMembership.objects.select_related("context").filter(user__in=users).order_by("pk")
        ),
        submissions=submissions,
        links=links,
        training_copies=training,
        audit_entries=entries,
        overrides_made=list(Submission.objects.filter(reviewed_by__in=_reviewer_names(users))),
    )


# --- Export ---------------------------------------------------------------------------------


def _iso(value: object) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None  # type: ignore[union-attr]


def export_data(records: StudentRecords) -> dict[str, object]:
    """Everything held about the student, as JSON-ready data."""
    answers = []
    for s in records.submissions:
        answer: dict[str, object] = {
            "submission_id": str(s.pk),
            "item": s.item.key,
            "answer": s.text,
            "submitted_at": _iso(s.created_at),
            "status": s.status,
            "auto_score": s.score,
            "probabilities": s.probabilities,
            "confidence": s.confidence,
            "needs_review": s.needs_review,
            "model_version": s.model_version.label if s.model_version else None,
            "scored_at": _iso(s.scored_at),
            "reviewed_score": s.reviewed_score,
            "review_comment": s.review_comment,
            "reviewed_by": s.reviewed_by,
            "reviewed_at": _iso(s.reviewed_at),
            "client_reference": s.client_reference,
        }
        for provider in answer_links():
            rows = records.links.get(provider.name, {})
            answer[provider.name] = provider.export(rows.get(str(s.pk)))
        answers.append(answer)
    return {
        "handle": {"lms_user_id": records.handle.lms_user_id, "issuer": records.issuer},
        "lti_identities": [
            {
                "issuer": u.registration.issuer,
                "sub": u.sub,
                "name": u.name,
                "given_name": u.given_name,
                "family_name": u.family_name,
                "email": u.email,
                "picture_url": u.picture_url,
                "lti1p1_id": u.lti1p1_id_on_platform,
                "first_seen": _iso(u.datetime_created),
                "last_seen": _iso(u.datetime_modified),
            }
            for u in records.users
        ],
        "course_memberships": [
            {
                "course": m.context.title or m.context.id_on_platform,
                "learner": m.is_learner,
                "instructor": m.is_instructor,
            }
            for m in records.memberships
        ],
        "answers": answers,
        "training_copies": [
            {"item": a.item.key, "response_key": a.response_key, "text": a.text, "score": a.score}
            for a in records.training_copies
        ],
        "audit_entries": [
            {
                "at": _iso(e.created_at),
                "action": e.action,
                "actor": e.actor,
                "submission_id": str(e.submission_id) if e.submission_id else None,
                "details": e.details,
            }
            for e in records.audit_entries
        ],
        "overrides_made_as_instructor": [str(link.pk) for link in records.overrides_made],
    }


def export_csv(data: dict[str, object]) -> str:
    """The export as one long CSV: section, record, field, value (nested values as JSON)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "record", "field", "value"])
    for section, value in data.items():
        rows = value if isinstance(value, list) else [value]
        for index, row in enumerate(rows):
            fields = row.items() if isinstance(row, dict) else [("value", row)]
            for name, cell in fields:
                text = cell if isinstance(cell, str) else json.dumps(cell, sort_keys=True)
                # A cell starting with = + - @ runs as a formula in spreadsheets.
                if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    text = "'" + text
                writer.writerow([section, index, name, text])
    return buffer.getvalue()


# --- Erasure --------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    mode: str
    handle_hash: str
    counts: dict[str, int] = field(default_factory=dict)
    redacted_files: list[str] = field(default_factory=list)
    unredactable_files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "handle_hash": self.handle_hash,
            "counts": self.counts,
            "redacted_files": self.redacted_files,
            "unredactable_files": self.unredactable_files,
        }


def _file_needles(values: Iterable[str]) -> list[bytes]:
    """Each value as raw UTF-8 and as it appears inside JSON (escaped)."""
    out: set[bytes] = set()
    for value in values:
        out.add(value.encode())
        out.add(json.dumps(value)[1:-1].encode())
    return sorted(out, key=len, reverse=True)


def scrub_files(root: Path, values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Redact ``values`` in the text files under ``root``; returns (redacted, unredactable)
    paths relative to ``root``. Binary files holding them are only reported."""
    needles = _file_needles(values)
    redacted: list[str] = []
    unredactable: list[str] = []
    if not needles or not root.is_dir():
        return redacted, unredactable
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            content = path.read_bytes()
        except OSError:
            continue
        if not any(n in content for n in needles):
            continue
        name = str(path.relative_to(root))
        if path.suffix.lower() not in TEXT_SUFFIXES:
            unredactable.append(name)
            continue
        for needle in needles:
            content = content.replace(needle, ERASED_TEXT.encode())
        path.write_bytes(content)
        redacted.append(name)
    return redacted, unredactable


def rehash_redacted_versions(redacted: Sequence[str]) -> list[str]:
    """Versions whose artifact folder (local store) had a file redacted (an ``auto`` manifest
    trained before the self-check left training answers out kept five of them) get the
    folder's new content hash, so they still load; returns their labels. Redaction never
    touches weights, only text."""
    from ml_core.artifact_store import folder_hash
    from scoring_plugin.models import ModelVersion

    if settings.ARTIFACT_STORE or not redacted:
        return []
    root = Path(settings.ARTIFACTS_DIR)
    names = {Path(n).as_posix() for n in redacted}
    changed = []
    for version in ModelVersion.objects.exclude(artifact_key=""):
        key = version.artifact_key.rstrip("/")
        if any(n.startswith(key + "/") for n in names) and (root / key).is_dir():
            ModelVersion.objects.filter(pk=version.pk).update(artifact_hash=folder_hash(root / key))
            changed.append(version.label)
    return changed


def scrub_stored_artifacts(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """With an S3 store: redact ``values`` in every version's artifact as the store holds it.

    Each artifact (fetched through this machine's cache) is copied, scanned like
    :func:`scrub_files`; one with a redacted file is stored again under its key (its objects
    overwritten) and its versions get the new content hash, so the old content is neither
    stored nor fetched again; this machine's cached copy of the old content is evicted. Returns
    (redacted, unredactable) as ``s3:<key>/<file>``. Artifacts trained since ``auto`` keeps no
    training answer (and a word of one answer only) hold nothing to redact."""
    from scoring_plugin import artifact_store
    from scoring_plugin.models import ModelVersion

    if not settings.ARTIFACT_STORE or not _file_needles(values):
        return [], []
    redacted: list[str] = []
    unredactable: list[str] = []
    stored = ModelVersion.objects.exclude(artifact_key="").exclude(artifact_hash="")
    for key, content_hash in sorted(set(stored.values_list("artifact_key", "artifact_hash"))):
        try:
            folder = artifact_store.store().fetch(key, content_hash)
        except ArtifactStoreError as exc:
            logger.warning("erasure could not scan stored artifact %s: %s", key, exc)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "artifact"
            shutil.copytree(folder, copy)
            changed, binary = scrub_files(copy, values)
            unredactable += [f"s3:{key}/{name}" for name in binary]
            if not changed:
                continue
            _, new_hash = artifact_store.store().put_folder(copy, key)
            documents = {n: (copy / n).read_bytes() for n in changed if is_document(n)}
            if documents:
                artifact_store.store().put_documents(key, documents)
        stored.filter(artifact_key=key, artifact_hash=content_hash).update(artifact_hash=new_hash)
        redacted += [f"s3:{key}/{name}" for name in changed]
    if redacted:
        artifact_store.evict_unneeded()
    return redacted, unredactable


def _scrub_entry_details(details: object) -> dict[str, object]:
    """An audit entry's details without free text: numbers, booleans and None are kept."""
    if not isinstance(details, dict):
        return {"erased": True}
    kept = {k: v for k, v in details.items() if isinstance(v, (int, float, bool)) or v is None}
    return {**kept, "erased": True}


def erase(records: StudentRecords, actor: str, *, mode: str = "erase") -> ErasureReport:
    """Erase (delete) or pseudonymise everything in ``records``; idempotent.

    ``erase`` deletes the answers, their LTI links, training copies, memberships and
    identities. ``pseudonymise`` keeps the answers' scores and decisions for the decision log
    and aggregates, but removes their text, comments and every identifier: the LTI identity
    becomes ``erased-<hash>``. Both delete the training copies and redact artifact files.
    """
    if mode not in MODES:
        raise ValidationError(f"Unknown erasure mode {mode!r}; use one of {', '.join(MODES)}.")
    digest = handle_hash(records.issuer, records.handle.lms_user_id)
    pseudonym = f"erased-{digest[:16]}"
    ids, texts = records.needles()
    report = ErasureReport(mode=mode, handle_hash=digest)
    submission_ids = [s.pk for s in records.submissions]
    with transaction.atomic():
        report.counts["training_copies"] = ScoredAnswer.objects.filter(
            pk__in=[a.pk for a in records.training_copies]
        ).delete()[0]
        entries = 0
        for entry in records.audit_entries:
            changes: dict[str, object] = {"details": _scrub_entry_details(entry.details)}
            if entry.actor.startswith("lti:") and entry.submission_id not in submission_ids:
                changes["actor"] = f"lti:{pseudonym}"
            AuditLog.objects.filter(pk=entry.pk).update(**changes)
            entries += 1
        report.counts["audit_entries_scrubbed"] = entries
        Submission.objects.filter(pk__in=[s.pk for s in records.overrides_made]).update(
            reviewed_by=f"lti:{pseudonym}"
        )
        report.counts["answers"] = len(submission_ids)
        report.counts["lti_identities"] = len(records.users)
        report.counts["memberships"] = len(records.memberships)
        if mode == "erase":
            # the apps' rows linked to the answers go with them (on_delete=CASCADE)
            Submission.objects.filter(pk__in=submission_ids).delete()
            LtiMembership.objects.filter(pk__in=[m.pk for m in records.memberships]).delete()
            LtiUser.objects.filter(pk__in=[u.pk for u in records.users]).delete()
        else:
            Submission.objects.filter(pk__in=submission_ids).update(
                text=ERASED_TEXT,
                embedding=None,  # derived from the text
                review_comment="",
                client_reference=pseudonym,
                submitted_by=None,
                error="",
            )
            for provider in answer_links():
                provider.pseudonymise(submission_ids)
            LtiUser.objects.filter(pk__in=[u.pk for u in records.users]).update(
                sub=pseudonym,
                lti1p1_id_on_platform="",
                given_name="",
                family_name="",
                name="",
                email="",
                picture_url="",
            )
        report.redacted_files, report.unredactable_files = scrub_files(
            Path(settings.ARTIFACTS_DIR), [*ids, *texts]
        )
        rehash_redacted_versions(report.redacted_files)
        in_store, unredactable_in_store = scrub_stored_artifacts([*ids, *texts])
        report.redacted_files += in_store
        report.unredactable_files += unredactable_in_store
        report.counts["files_redacted"] = len(report.redacted_files)
        report.counts["files_unredactable"] = len(report.unredactable_files)
        record(
            AuditLog.Action.ERASE,
            actor,
            details={
                "mode": mode,
                "handle_hash": digest,
                "counts": dict(report.counts),
                "unredactable_files": report.unredactable_files,
            },
        )
    if report.unredactable_files:
        logger.warning(
            "erasure %s: %d binary artifact file(s) hold the student's text: %s",
            digest[:16],
            len(report.unredactable_files),
            ", ".join(report.unredactable_files),
        )
    return report


def record_export(records: StudentRecords, actor: str, fmt: str) -> None:
    """Log that someone exported a student's data (the hash, not the handle)."""
    record(
        AuditLog.Action.EXPORT,
        actor,
        details={
            "handle_hash": handle_hash(records.issuer, records.handle.lms_user_id),
            "format": fmt,
            "answers": len(records.submissions),
        },
    )
