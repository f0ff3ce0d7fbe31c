"""Validating an LTI 1.3 launch (the OIDC ``id_token`` a platform posts to the tool).

pylti1p3 does the protocol work; this module tightens it where it is too lenient and turns every
failure into a :class:`LaunchError` with a code and a message a person can act on:

* the signature is checked against the platform's JWKS key with the token's ``kid``;
* ``iss`` must be a registered, active platform and ``aud`` must contain its client id;
  with several audiences ``azp`` must be the client id;
* ``exp`` and ``iat`` are required; ``iat`` may not lie in the future or too far in the past;
* the nonce must be the one this tool issued at the login that made the launch's ``state``
  (state and nonce are stored together at login), and it is used up: a second launch with the
  same id_token is refused (pylti1p3 alone accepts it again until the token expires, and
  accepts any nonce it issued with any state);
* the deployment must be known and active; message type and LTI version must be supported;
* the claims the 1EdTech certification requires are present (``sub``, version, message type,
  roles, and the resource link id of a resource or submission review launch), each missing one
  refused as ``missing_claim``; the token header must name its key (``kid``). A roles claim
  that is an empty list is valid: such a launch opens without rights.

A token whose claims have the wrong JSON types (``iat`` as a string, say) is refused as
malformed (400), never a server error. Nothing from the token is used before all of this has
passed.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, cast

import jwt
from django.conf import settings
from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from lti_tool.models import LtiDeployment, LtiRegistration
from lti_tool.utils import DjangoToolConfig
from pylti1p3.contrib.django import DjangoCacheDataStorage, DjangoMessageLaunch
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException
from pylti1p3.launch_data_storage.base import DisableSessionId
from pylti1p3.registration import Registration

from lti import client_storage
from lti.models import UsedNonce

logger = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = CLAIM + "message_type"
VERSION = CLAIM + "version"
DEPLOYMENT_ID = CLAIM + "deployment_id"
ROLES = CLAIM + "roles"
RESOURCE_LINK = CLAIM + "resource_link"


class MessageType(StrEnum):
    """The LTI messages the tool answers (``message_type`` of a launch)."""

    RESOURCE_LINK = "LtiResourceLinkRequest"
    DEEP_LINKING = "LtiDeepLinkingRequest"
    SUBMISSION_REVIEW = "LtiSubmissionReviewRequest"


SUPPORTED_MESSAGE_TYPES = tuple(MessageType)


@dataclass
class LaunchError(Exception):
    """A launch that is refused. ``code`` is stable (tests, logs); ``message`` is for people."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


_STATE_NONCE_PREFIX = "scorebridge-lti-state-nonce-"
# How long a login's state and nonce wait for the platform's launch.
STATE_TTL_SECONDS = 15 * 60


def _state_key(state: str) -> str:
    return _STATE_NONCE_PREFIX + hashlib.sha256(state.encode()).hexdigest()


def bind_state_to_nonce(state: str, nonce: str) -> None:
    """At login: remember which nonce was issued together with ``state``."""
    caches[settings.LTI_CACHE_ALIAS].set(_state_key(state), nonce, STATE_TTL_SECONDS)


def nonce_for_state(state: str) -> str | None:
    value = caches[settings.LTI_CACHE_ALIAS].get(_state_key(state))
    return value if isinstance(value, str) else None


def forget_state(state: str) -> None:
    caches[settings.LTI_CACHE_ALIAS].delete(_state_key(state))


class SharedCacheStorage(DjangoCacheDataStorage):
    """pylti1p3's cache storage without its ``lti1p3-session-id`` cookie: nonces are random and
    used once, and the browser is bound to its login by the state (a cookie, or the platform's
    client-side storage), so a browser that blocks the tool's cookies in the frame can still
    launch."""

    _session_cookie_name = ""


def launch_storage() -> DjangoCacheDataStorage:
    """OIDC state, nonces and launch data, in the cache every process shares."""
    return SharedCacheStorage(cache_name=settings.LTI_CACHE_ALIAS)


@dataclass
class NeedsClientStorage(Exception):
    """The login kept its state in the platform's client-side storage: the browser must read it
    back (``lti.get_data``) and post it with the id_token before the launch can be checked."""

    state: str
    record: client_storage.StoredState


class ToolConfig(DjangoToolConfig):
    """django-lti's registry of platforms, without creating deployments as a side effect of
    validation: an unknown deployment id is recorded inactive and the launch is refused."""

    def find_deployment_by_params(  # type: ignore[override]
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        registration = self.registration
        if registration is None:
            return None
        deployment, created = LtiDeployment.objects.get_or_create(
            registration=registration,
            deployment_id=deployment_id,
            defaults={"is_active": settings.LTI_AUTO_ACTIVATE_DEPLOYMENTS},
        )
        self.deployment = deployment
        if not deployment.is_active:
            raise LaunchError(
                "inactive_deployment",
                f"Deployment '{deployment_id}' of {registration.name} is not active in "
                "Scorebridge. An administrator can activate it under LTI registrations.",
                403,
            )
        return Deployment().set_deployment_id(deployment_id)

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:  # type: ignore[override]
        return self.find_deployment_by_params(iss, deployment_id, "")


class MessageLaunch(DjangoMessageLaunch):
    """A pylti1p3 launch with the stricter checks listed in this module's docstring."""

    def __init__(self, request: HttpRequest, tool_config: ToolConfig) -> None:
        super().__init__(request, tool_config, launch_data_storage=launch_storage())
        # Platform JWKS are cached for an hour in the shared cache; an unknown kid refetches.
        self.set_public_key_caching(launch_storage(), cache_lifetime=3600)
        self.set_launch_data_lifetime(settings.LTI_LAUNCH_TTL_SECONDS)

    def validate(self) -> MessageLaunch:
        self._validated = True
        try:
            try:
                self._step("bad_state", self.validate_state)
            except LaunchError as error:
                if error.code == "bad_state" and self._nonce_already_used():
                    raise _replayed() from error
                raise
            self._step("malformed_token", self.validate_jwt_format)
            self.validate_nonce()
            self._step("unknown_platform", self.validate_registration)
            self.validate_jwt_signature()
            self.validate_claims()
            self.validate_deployment()
            self.validate_message()
            self.use_nonce()
            self.save_launch_data()
        except LaunchError:
            self._validated = False
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A claim of the wrong JSON type got past the checks above: a bad request.
            self._validated = False
            logger.info("LTI launch with malformed claims: %r", exc)
            raise LaunchError(
                "malformed_token", "The launch token's claims have the wrong types."
            ) from exc
        except Exception:
            self._validated = False
            raise
        return self

    @staticmethod
    def _step(code: str, check: Any) -> None:
        try:
            check()
        except LtiException as exc:
            raise LaunchError(code, _explain(code, str(exc))) from exc

    def validate_state(self) -> MessageLaunch:
        """The state cookie, or, when the login stored the state in the platform's client-side
        storage, the secret read back from there (``lti.client_storage``)."""
        state = self._get_request_param("state")
        record = client_storage.recall(state)
        if record is None:
            # Only the state cookie: pylti1p3 would also accept a state whose id_token was
            # launched before (its cache), i.e. a replay from another browser.
            if not state or self._cookie_service.get_cookie(state) != state:
                raise LaunchError(
                    "bad_state", _explain("bad_state", "no state cookie for this launch")
                )
            return self
        secret = self._get_request_param(client_storage.SECRET_FIELD)
        if not secret:
            raise NeedsClientStorage(state, record)
        if not client_storage.matches(record, secret):
            raise LaunchError(
                "bad_state",
                "The login state kept in the course page for this launch does not match. Open "
                "the activity again from the course.",
            )
        client_storage.forget(state)
        return self

    def _nonce_already_used(self) -> bool:
        """Whether the (not yet verified) token's nonce was used by a launch: a replay without
        the state cookie is then reported as a replay, not as a cookie problem."""
        try:
            self.validate_jwt_format()
        except LtiException:
            return False
        nonce = self._get_jwt_body().get("nonce")
        return isinstance(nonce, str) and UsedNonce.objects.filter(nonce=nonce[:255]).exists()

    def validate_nonce(self) -> MessageLaunch:
        nonce = self._get_jwt_body().get("nonce")
        if not nonce or not isinstance(nonce, str):
            raise LaunchError("missing_nonce", "The launch token has no nonce.")
        if UsedNonce.objects.filter(nonce=nonce[:255]).exists():
            raise _replayed()
        if not self._session_service.check_nonce(nonce):
            raise LaunchError(
                "unknown_nonce",
                "The launch token's nonce was not issued by this tool's login step, or it "
                "expired. Open the activity again from the course.",
            )
        state = self._get_request_param("state")
        if not state or nonce_for_state(str(state)) != nonce:
            raise LaunchError(
                "nonce_state_mismatch",
                "The launch token's nonce was not issued for this login. Open the activity "
                "again from the course.",
                403,
            )
        return self

    def _platform(self) -> Registration:
        """The registration that ``validate_registration`` found (it refuses a launch without)."""
        if self._registration is None:
            raise LaunchError("unknown_platform", "The launch's platform is not registered.")
        return self._registration

    def _find_key(self) -> tuple[str, str]:
        if not self._jwt.get("header", {}).get("kid"):
            raise LaunchError(
                "missing_kid",
                "The launch token's header has no kid, so the platform key that signed it "
                "cannot be chosen. The platform must name its key.",
            )
        try:
            return self.get_public_key()
        except LtiException as first:
            error = first
        key_set_url = self._platform().get_key_set_url()
        if "Unable to find public key" in str(error) and key_set_url:
            # The platform may have rotated its keys since its JWKS was cached: fetch it again.
            storage = self._public_key_cache_data_storage
            if storage is not None:
                cache_key = "key-set-url-" + hashlib.md5(key_set_url.encode()).hexdigest()
                with DisableSessionId(storage):
                    caches[settings.LTI_CACHE_ALIAS].delete(storage._prepare_key(cache_key))
            self._platform().set_key_set(None)
            try:
                return self.get_public_key()
            except LtiException as again:
                error = again
        raise LaunchError(
            "unknown_key",
            "The launch token is signed with a key the platform does not publish "
            f"(kid {self._jwt.get('header', {}).get('kid')!r}): {error}",
            403,
        ) from error

    def validate_jwt_signature(self) -> MessageLaunch:
        public_key, algorithm = self._find_key()
        if algorithm not in ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"):
            raise LaunchError("bad_signature", f"Signature algorithm {algorithm} is not allowed.")
        client_id = self._platform().get_client_id()
        try:
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=self._platform().get_issuer(),
                leeway=settings.LTI_CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise LaunchError("expired", "The launch token has expired.", 403) from exc
        except jwt.ImmatureSignatureError as exc:
            raise LaunchError(
                "issued_in_future", "The launch token was issued in the future (iat).", 403
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise LaunchError(
                "bad_audience",
                f"The launch token is not addressed to this tool's client id {client_id}.",
                403,
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise LaunchError("unknown_platform", "The token's issuer is not registered.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise LaunchError(
                "missing_claim", f"The launch token lacks the '{exc.claim}' claim."
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise LaunchError(
                "bad_signature", "The launch token's signature does not verify.", 403
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise LaunchError("malformed_token", f"The launch token is invalid: {exc}") from exc
        return self

    def validate_claims(self) -> MessageLaunch:
        """Checks PyJWT does not make: ``azp`` and how old ``iat`` may be."""
        body = self._get_jwt_body()
        client_id = self._platform().get_client_id()
        audiences = body["aud"] if isinstance(body["aud"], list) else [body["aud"]]
        azp = body.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != client_id:
            raise LaunchError(
                "bad_azp",
                f"The launch token's authorized party (azp) {azp!r} is not this tool's client id.",
                403,
            )
        if audiences[0] != client_id and azp is None:
            raise LaunchError("bad_audience", "The launch token's first audience is not this tool.")
        for claim in ("iat", "exp", "nbf"):
            value = body.get(claim)
            if claim in body and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise LaunchError(
                    "malformed_token", f"The launch token's '{claim}' claim is not a number."
                )
        now = timezone.now().timestamp()
        issued = float(cast(Mapping[str, float], body)["iat"])  # a number: checked above
        if issued < now - settings.LTI_MAX_TOKEN_AGE_SECONDS - settings.LTI_CLOCK_SKEW_SECONDS:
            raise LaunchError("too_old", "The launch token was issued too long ago (iat).", 403)
        return self

    def validate_deployment(self) -> MessageLaunch:
        if not self._get_jwt_body().get(DEPLOYMENT_ID):
            raise LaunchError("missing_claim", "The launch token has no deployment_id.")
        self._step("unknown_deployment", super().validate_deployment)
        return self

    def validate_message(self) -> MessageLaunch:
        body = self._get_jwt_body()
        for claim, label in ((VERSION, "LTI version"), (MESSAGE_TYPE, "message_type")):
            if not body.get(claim):
                raise LaunchError("missing_claim", f"The launch token has no {label} claim.")
        if body.get(VERSION) != "1.3.0":
            raise LaunchError(
                "bad_version", f"LTI version {body.get(VERSION)!r} is not supported; use 1.3.0."
            )
        message_type = body.get(MESSAGE_TYPE)
        if message_type not in SUPPORTED_MESSAGE_TYPES:
            raise LaunchError(
                "bad_message_type", f"Message type {message_type!r} is not supported by this tool."
            )
        if not isinstance(body.get("sub"), str) or not body["sub"]:
            raise LaunchError("missing_claim", "The launch token has no user (sub).")
        if not isinstance(body.get(ROLES), list):
            raise LaunchError(
                "missing_claim", "The launch token has no roles claim (an empty list is allowed)."
            )
        if message_type != MessageType.DEEP_LINKING:
            link = body.get(RESOURCE_LINK)
            if not isinstance(link, dict) or not link.get("id"):
                raise LaunchError("missing_claim", "The launch token has no resource_link id.")
        if message_type == MessageType.SUBMISSION_REVIEW:
            # pylti1p3 requires for_user; Moodle's "View External tool results" (the gradebook
            # column) sends none and means "the class's results": the page handles both.
            return self
        self._step("invalid_message", super().validate_message)
        return self

    def use_nonce(self) -> None:
        """Record the nonce as used; a second use is a replayed id_token."""
        body = self._get_jwt_body()
        expires = timezone.now() + timedelta(
            seconds=settings.LTI_MAX_TOKEN_AGE_SECONDS + 2 * settings.LTI_CLOCK_SKEW_SECONDS
        )
        try:
            with transaction.atomic():
                UsedNonce.objects.create(
                    issuer=body["iss"][:255], nonce=body["nonce"][:255], expires_at=expires
                )
        except IntegrityError as exc:
            raise _replayed() from exc
        if secrets.randbelow(100) == 0:  # now and then, forget nonces past their expiry
            UsedNonce.purge_expired()
        # The login nonce is spent too, so the pair (state, nonce) can never launch again.
        storage = self._session_service.data_storage
        caches[settings.LTI_CACHE_ALIAS].delete(
            storage._prepare_key(self._session_service._get_key("nonce", body["nonce"]))
        )
        forget_state(str(self._get_request_param("state")))

    @property
    def registration_row(self) -> LtiRegistration:
        return self._tool_config.registration  # type: ignore[no-any-return]

    @property
    def deployment_row(self) -> LtiDeployment:
        return self._tool_config.deployment  # type: ignore[no-any-return]


def _replayed() -> LaunchError:
    return LaunchError(
        "replayed", "This launch was already used. Open the activity again from the course.", 403
    )


def _explain(code: str, detail: str) -> str:
    messages = {
        "bad_state": (
            "The login state of this launch is missing or does not match. This happens when "
            "the browser blocks the tool's cookies, or when a launch is opened twice."
        ),
        "malformed_token": "The launch token is not a valid JWT.",
        "unknown_platform": (
            "This platform (issuer and client id) is not registered in Scorebridge, or its "
            "registration is inactive."
        ),
        "unknown_deployment": "The deployment of this launch is not known to Scorebridge.",
        "invalid_message": "The launch message lacks a required claim.",
    }
    return f"{messages.get(code, 'The launch is invalid.')} ({detail})"


def validate_launch(request: HttpRequest) -> MessageLaunch:
    """Validate the id_token posted to the launch URL; raise :class:`LaunchError` if refused."""
    if not request.POST.get("id_token"):
        raise LaunchError("missing_token", "No id_token was posted; start from the course page.")
    try:
        launch = MessageLaunch(request, ToolConfig())
    except LtiException as exc:  # the login's session cookie is missing
        raise LaunchError("bad_state", _explain("bad_state", str(exc))) from exc
    launch.validate()
    return launch
