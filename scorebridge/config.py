"""The settings registry: every environment variable Scorebridge reads, in one place.

Each :class:`Setting` carries its name, type, default and help. ``scorebridge/settings.py``
reads every value through :func:`read`, and the README's configuration table is generated from
:data:`REGISTRY` (``scripts/settings_table.py``; a test checks that they agree). A value that is
present but malformed raises ``ImproperlyConfigured`` naming the variable, so a typo in a
deployment stops the process at start-up instead of running with a silent default.

This module imports no Django settings, so the table script can load it alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

# --- typed parsers: text -> value, ValueError when malformed ----------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(text: str) -> bool:
    """The one reading of true/false: 1/0, true/false, yes/no, on/off (empty is false)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("use one of 1/0, true/false, yes/no, on/off")


def integer(minimum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        number = int(text)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def optional_number(minimum: float | None = None) -> Callable[[str], float | None]:
    """Empty = no value (None); else a number."""
    inner = number(minimum)
    return lambda text: None if not text else inner(text)


def days_or_forever(value: str) -> int | None:
    """Days to keep a kind of data; 0 or empty = keep it forever (None)."""
    if not value:
        return None
    return integer(minimum=0)(value) or None


def text(value: str) -> str:
    return value


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.startswith(schemes):
            raise ValueError(f"must start with one of {', '.join(schemes)}")
        return value

    return parse


def proxy_header(value: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto: https`` -> ``("HTTP_X_FORWARDED_PROTO", "https")``; empty = None."""
    if not value:
        return None
    name, sep, expected = value.partition(":")
    name, expected = name.strip(), expected.strip()
    if not sep or not name or not expected or not name.replace("-", "").isalnum():
        raise ValueError("must look like 'X-Forwarded-Proto: https'")
    return "HTTP_" + name.upper().replace("-", "_"), expected


def cache_url(*, allow_locmem: bool) -> Callable[[str], dict[str, object]]:
    """A cache URL (file://, db://, redis://, rediss://; locmem:// if allowed) -> CACHES entry."""

    def parse(value: str) -> dict[str, object]:
        if value.startswith(("redis://", "rediss://")):
            return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": value}
        if value.startswith("db://") and len(value) > len("db://"):
            return {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": value[len("db://") :],
            }
        if value.startswith("file://") and len(value) > len("file://"):
            return {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": value[len("file://") :],
                "OPTIONS": {"MAX_ENTRIES": 100_000},
            }
        if allow_locmem and value == "locmem://":
            return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        raise ValueError(
            "must start with file://, db://, redis:// or rediss://"
            + (" (or be locmem://)" if allow_locmem else "")
        )

    return parse


def database_url(value: str) -> dict[str, object]:
    import dj_database_url

    return dict(dj_database_url.parse(value, conn_max_age=60))


# --- the registry ------------------------------------------------------------------------------


class _Computed:
    """Marks a default that ``settings.py`` computes (from other settings) and passes to read."""


COMPUTED = _Computed()


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: how it is parsed, its default and what it means."""

    name: str
    parse: Callable[[str], T]
    default: T | str | _Computed
    help: str
    type: str = field(default="text", metadata={"help": "shown in the README"})
    default_text: str = field(default="", metadata={"help": "README default, when not repr"})
    read_by: str = field(default="settings", metadata={"help": "settings, or the script"})
    # an empty value means the default, as if unset (text and URL settings)
    empty_is_default: bool = False

    def readme_default(self) -> str:
        if self.default_text:
            return self.default_text
        value = self.default
        if isinstance(value, bool):
            return "`true`" if value else "`false`"
        if value is None or value == "" or value == []:
            return "unset"
        if isinstance(value, list):
            return "`" + ",".join(value) + "`"
        return f"`{value}`"


REGISTRY: list[Setting[object]] = []


def _add(
    name: str,
    parse: Callable[[str], T],
    default: T | _Computed,
    help: str,  # noqa: A002 - the field's name
    type: str,  # noqa: A002
    default_text: str = "",
    read_by: str = "settings",
    empty_is_default: bool | None = None,
) -> None:
    REGISTRY.append(
        Setting(  # type: ignore[arg-type]
            name,
            parse,
            default,
            help,
            type=type,
            default_text=default_text,
            read_by=read_by,
            empty_is_default=parse is text if empty_is_default is None else empty_is_default,
        )
    )


def _bool(name: str, default: bool | _Computed, help: str, default_text: str = "") -> None:  # noqa: A002
    _add(name, parse_bool, default, help, "bool", default_text)


def _int(name: str, default: int, minimum: int, help: str, default_text: str = "") -> None:  # noqa: A002
    _add(name, integer(minimum), default, help, f"int ≥ {minimum}", default_text)


def _str(name: str, default: str | _Computed, help: str, default_text: str = "") -> None:  # noqa: A002
    _add(name, text, default, help, "text", default_text)


# Where things live
_str(
    "SCOREBRIDGE_VAR_DIR",
    COMPUTED,
    "database, broker folders, artifacts, secret key; created 0700, the SQLite file (and its -wal/-shm) and secret key 0600, tightened at start if an older version left them open",
    "`var/`",
)
_str("SCOREBRIDGE_ARTIFACTS_DIR", COMPUTED, "trained model versions", "`var/artifacts`")
_str("SCOREBRIDGE_STATIC_ROOT", COMPUTED, "where `collectstatic` puts static files", "`var/static`")
_str(
    "SCOREBRIDGE_ARTIFACT_STORE",
    "",
    "where model artifacts are stored: unset = folders under `SCOREBRIDGE_ARTIFACTS_DIR`; "
    "`s3://bucket/prefix` = an S3-compatible object store shared by every machine",
    "unset (local folder)",
)
_str(
    "SCOREBRIDGE_ARTIFACT_CACHE_DIR",
    COMPUTED,
    "where a worker caches the artifacts it fetched from the object store (hash-checked; "
    "evicted when no active version needs them)",
    "`var/artifact-cache`",
)
_str("SCOREBRIDGE_S3_ENDPOINT_URL", "", "the object store's http(s) URL (unset: AWS)", "unset")
_str("SCOREBRIDGE_S3_REGION", "us-east-1", "the object store's region")
_str("SCOREBRIDGE_S3_ACCESS_KEY_ID", "", "access key id for the object store", "unset")
_str("SCOREBRIDGE_S3_SECRET_ACCESS_KEY", "", "secret access key for the object store", "unset")
_str(
    "SCOREBRIDGE_S3_SECRET_ACCESS_KEY_FILE",
    "",
    "a file holding the secret access key (used when the variable itself is unset)",
    "unset",
)
_str(
    "SCOREBRIDGE_LOG_DIR",
    "",
    "folder for the application log `scorebridge.log` (unset: stdout; the demo sets `var/log`); "
    "log files there (else under `var/log`) are purged after `SCOREBRIDGE_RETAIN_LOGS_DAYS`",
    "unset (stdout)",
)
_add(
    "DATABASE_URL",
    database_url,
    COMPUTED,
    "e.g. `postgres://user:pass@host:5432/db`",
    "database URL",
    "`sqlite:///var/scorebridge.sqlite3`",
    empty_is_default=True,
)
# Django
_str("SCOREBRIDGE_SECRET_KEY", "", "Django secret key", "generated once into `var/secret_key`")
_str(
    "SCOREBRIDGE_SECRET_KEY_FILE",
    "",
    "a file holding the secret key (read when `SCOREBRIDGE_SECRET_KEY` is unset)",
)
_bool("SCOREBRIDGE_DEBUG", False, "Django debug mode")
_add(
    "SCOREBRIDGE_ALLOWED_HOSTS",
    comma_list,
    ["localhost", "127.0.0.1", "[::1]"],
    "comma-separated host names",
    "list",
)
_add(
    "SCOREBRIDGE_CSRF_TRUSTED_ORIGINS",
    comma_list,
    [],
    "comma-separated origins, e.g. `https://scoring.school.example`",
    "list",
    "empty",
)
_str("SCOREBRIDGE_TIME_ZONE", "UTC", "time zone of dates shown in pages and the admin")
_str("SCOREBRIDGE_LOG_LEVEL", "INFO", "level of the root logger")
_int(
    "SCOREBRIDGE_MAX_UPLOAD_BYTES",
    20 * 1024 * 1024,
    1024,
    "largest request body (a CSV upload of scored answers)",
)
# Production profile
_bool(
    "SCOREBRIDGE_SECURE",
    False,
    "production profile for a site served over https: turns on the settings below (`manage.py check --deploy` is clean under it)",
)
_bool(
    "SCOREBRIDGE_SESSION_COOKIE_SECURE",
    COMPUTED,
    "session cookie only over https",
    "`SCOREBRIDGE_SECURE`",
)
_bool(
    "SCOREBRIDGE_CSRF_COOKIE_SECURE",
    COMPUTED,
    "CSRF cookie only over https",
    "`SCOREBRIDGE_SECURE`",
)
_bool(
    "SCOREBRIDGE_SSL_REDIRECT",
    COMPUTED,
    "redirect http to https (`/health/` is exempt, for load balancers)",
    "`SCOREBRIDGE_SECURE`",
)
_int(
    "SCOREBRIDGE_HSTS_SECONDS",
    0,
    0,
    "`Strict-Transport-Security` max-age",
    "`31536000` with the profile, else `0`",
)
_bool(
    "SCOREBRIDGE_HSTS_INCLUDE_SUBDOMAINS",
    COMPUTED,
    "HSTS includeSubDomains",
    "`SCOREBRIDGE_SECURE`",
)
_bool(
    "SCOREBRIDGE_HSTS_PRELOAD",
    False,
    "HSTS preload (a decision for the whole domain; Django's preload warning is silenced while it is off)",
)
_add(
    "SCOREBRIDGE_PROXY_SSL_HEADER",
    proxy_header,
    None,
    "behind a TLS proxy that sets it: e.g. `X-Forwarded-Proto: https` (Django's `SECURE_PROXY_SSL_HEADER`; the proxy must drop a client's own copy)",
    "`Header: value`",
)
_str(
    "SCOREBRIDGE_CSP",
    COMPUTED,
    "`Content-Security-Policy` of every page (`off` for none); LTI pages keep their `frame-ancestors` (active registrations)",
    "a same-origin policy with the profile, else unset",
)
# Scoring
_str(
    "SCORING_BACKBONE",
    "",
    "any Hugging Face model name or local folder",
    "packaged all-MiniLM-L6-v2",
)
_add(
    "SCORING_BACKEND",
    choice("auto", "torch", "onnx", "onnx-int8"),
    "auto",
    "`auto` (torch fp16 on a GPU, `onnx-int8` on CPU), `torch`, `onnx` (fp32) or `onnx-int8` (quantized: about 10x faster than torch on CPU, mean QWK within 0.01)",
    "one of `auto`, `torch`, `onnx`, `onnx-int8`",
)
_str("SCORING_DEVICE", "", "e.g. `cpu`, `cuda:0`", "cuda if available, else cpu")
_int("SCORING_MAX_ANSWER_CHARS", 10_000, 1, "longer answers are refused with a clear error")
_int("SCORING_BATCH_SIZE", 32, 1, "a scoring worker scores this many answers at once...")
_add(
    "SCORING_BATCH_WAIT_SECONDS",
    number(minimum=0.001),
    0.02,
    "...or what it has this long after the first arrived",
    "number ≥ 0.001",
)
_int("SCORING_WORKER_PROCESSES", 1, 1, "scoring processes per machine")
_int(
    "SCORING_THREADS",
    0,
    0,
    "intra-op threads per scoring process (torch or ONNX Runtime); auto = cores / (processes + 1), at least 1",
    "`0` (auto)",
)
_add(
    "SCORING_TRAIN_KIND",
    choice("auto", "head", "lora", "full"),
    "auto",
    "default kind for `train_items`, `demo.sh` and *Retrain with reviewed answers*: `auto`, `head`, `lora`, `full`",
    "one of `auto`, `head`, `lora`, `full`",
)
_str("SCORING_ONNX_CACHE", "", "where exported ONNX graphs are kept", "`~/.cache/scorebridge/onnx`")
_add(
    "SCOREBRIDGE_PRELOAD_ENGINE",
    choice("auto", "1", "0"),
    "auto",
    "whether a worker process loads the scoring engine and every active model version after fork: `auto` = when the worker consumes the `scoring` queue, `1` always, `0` never",
    "one of `auto`, `1`, `0`",
)
_int(
    "SCORING_METRICS_PORT",
    0,
    0,
    "a worker serves its own Prometheus metrics on this port",
    "`0` (off)",
)
_str("SCORING_METRICS_ADDR", "127.0.0.1", "the address it listens on (`0.0.0.0` in a container)")
_add(
    "SCOREBRIDGE_TARGET_AGREEMENT",
    number(minimum=0.0, maximum=1.0),
    0.90,
    "exact agreement with human scores that the answers an `auto` model posts without review should reach; its review threshold is chosen for it at training",
    "fraction 0..1",
)
_add(
    "SCOREBRIDGE_COLD_START_TARGET_QWK",
    number(minimum=0.01, maximum=0.99),
    0.7,
    "cross-validated QWK an item's model must reach before it is activated when it trained by itself from instructors' scores (issue 16); an item may set its own",
    "number 0.01..0.99",
)
_add(
    "SCOREBRIDGE_REVIEW_THRESHOLD",
    number(minimum=0.0),
    0.6,
    "review threshold for versions that store none (`head`, `lora`, `full`, `merged`, `distilled`) and items without their own",
    "number ≥ 0",
)
_int(
    "SCOREBRIDGE_GAMING_ANSWERS",
    20,
    1,
    "gaming check after training: generated answers per attack ([docs/trust.md](docs/trust.md))",
)
_add(
    "SCOREBRIDGE_GAMING_MAX_CREDIT_RATE",
    optional_number(minimum=0.0),
    None,
    "highest share of any attack's answers that may earn credit before activation is refused (e.g. `0.2`)",
    "number ≥ 0",
    "unset (no limit)",
)
# Queues
_add(
    "CELERY_BROKER_URL",
    url("filesystem://", "redis://", "rediss://", "amqp://", "amqps://", "pyamqp://"),
    "filesystem://",
    "`redis://...` or `amqp://...`",
    "broker URL",
    "`filesystem://` (under `var/broker/`)",
    empty_is_default=True,
)
_int(
    "CELERY_VISIBILITY_TIMEOUT",
    4 * 3600,
    60,
    "seconds before Redis redelivers an unacknowledged job",
)
_int("SCOREBRIDGE_REQUEUE_AFTER_SECONDS", 120, 5, "the sweeper re-enqueues answers queued longer")
_int("SCOREBRIDGE_SWEEP_INTERVAL_SECONDS", 60, 1, "how often the sweeper runs (celery beat)")
_int(
    "SCOREBRIDGE_MAX_SCORING_ATTEMPTS",
    5,
    1,
    "an answer workers took this many times without finishing it (it kills them) is marked failed; re-sending is not an attempt",
)
# API and metrics
_str("SCOREBRIDGE_API_RATE", "6000/minute", "API rate limit per user")
_str("SCOREBRIDGE_API_ANON_RATE", "60/minute", "API rate limit for anonymous clients")
_str("SCOREBRIDGE_API_BATCH_RATE", "120/minute", "API rate limit of the batch endpoint")
_int(
    "SCOREBRIDGE_API_TOKEN_CACHE_SECONDS",
    10,
    0,
    "each web process keeps a checked API token this long: a token deleted or a user deactivated elsewhere is refused within this time (at once in the process that did it); `0` checks the database on every request",
)
_add(
    "SCOREBRIDGE_CACHE_URL",
    cache_url(allow_locmem=True),
    "locmem://",
    "cache holding the API rate-limit counters; with several web processes or machines set `redis://host:6379/2` so that they count together (otherwise each process counts on its own); `file://`, `db://` too",
    "cache URL",
    "`locmem://` (this process's memory)",
    empty_is_default=True,
)
_str(
    "SCOREBRIDGE_METRICS_TOKEN",
    "",
    "`/metrics` needs `Authorization: Bearer <token>`",
    "unset (`scripts/demo.sh`: generated into `var/metrics_token`)",
)
_bool(
    "SCOREBRIDGE_METRICS_PUBLIC",
    False,
    "with no token `/metrics` answers 403; `1` opens it to anyone who can reach it",
)
# Retention and privacy
_add(
    "SCOREBRIDGE_RETAIN_ANSWERS_DAYS",
    days_or_forever,
    730,
    "answers (with reviews, LTI links, their training copies) are purged after this; `0`/empty = keep ([docs/trust.md](docs/trust.md))",
    "days",
)
_add(
    "SCOREBRIDGE_RETAIN_LTI_IDENTITIES_DAYS",
    days_or_forever,
    730,
    "LTI users not seen for this long and with no answers left are purged",
    "days",
)
_add(
    "SCOREBRIDGE_RETAIN_LOGS_DAYS",
    days_or_forever,
    90,
    "log files under `SCOREBRIDGE_LOG_DIR` are purged after this",
    "days",
)
_add(
    "SCOREBRIDGE_RETAIN_AUDIT_DETAILS_DAYS",
    days_or_forever,
    730,
    "free text (override comments) in audit entries is removed after this; entries stay",
    "days",
)
_int(
    "SCOREBRIDGE_PURGE_INTERVAL_SECONDS",
    24 * 3600,
    1,
    "how often the retention purge runs (celery beat)",
)
_str(
    "SCOREBRIDGE_PRIVACY_SALT",
    "",
    "key of the salted hash that stands for an erased student in the audit log; keep it stable",
    "the secret key",
)
# LTI
_add(
    "SCOREBRIDGE_LTI_CACHE_URL",
    cache_url(allow_locmem=False),
    COMPUTED,
    "shared cache for launches, OIDC state, access tokens (`db://table`, `redis://...` too)",
    "cache URL",
    "`file://<var>/cache/lti`",
    empty_is_default=True,
)
_int("SCOREBRIDGE_LTI_LAUNCH_TTL_SECONDS", 8 * 3600, 300, "how long a launch's pages stay usable")
_int("SCOREBRIDGE_LTI_MAX_TOKEN_AGE_SECONDS", 600, 30, "oldest accepted id_token `iat`")
_int("SCOREBRIDGE_LTI_CLOCK_SKEW_SECONDS", 60, 0, "allowed clock difference with the platform")
_bool(
    "SCOREBRIDGE_LTI_AUTO_ACTIVATE_DEPLOYMENTS",
    False,
    "activate new deployment ids without an admin",
)
_bool(
    "SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS",
    False,
    "let dynamic registration call plain http and loopback/private/link-local addresses (a test LMS on this machine or the LAN)",
    "`false` (`1` in `scripts/demo.sh` and the tests)",
)
_add(
    "SCOREBRIDGE_LTI_FRAME_ANCESTORS",
    comma_list,
    [],
    "extra origins allowed to frame the tool",
    "list",
    "empty",
)
_int("SCOREBRIDGE_LTI_KEY_GRACE_DAYS", 7, 0, "days a replaced tool key stays in the JWKS")
_int("SCOREBRIDGE_LTI_PASSBACK_MAX_RETRIES", 8, 0, "retries of a failed grade post")
_str("SCOREBRIDGE_LTI_TOOL_ORIGIN", "", "public https origin of the tool", "from the request")
_str("SCOREBRIDGE_LTI_TOOL_TITLE", "Scorebridge", "tool name shown in the LMS")
# Read by the scripts, not by settings.py
_add(
    "SCOREBRIDGE_PORT",
    integer(1),
    8000,
    "where `scripts/demo.sh` serves",
    "int ≥ 1",
    read_by="scripts/demo.sh",
)
_add(
    "SCOREBRIDGE_HOST",
    text,
    "127.0.0.1",
    "the address `scripts/demo.sh` serves on",
    "text",
    read_by="scripts/demo.sh",
)
_add(
    "SCOREBRIDGE_TORCH_INDEX_URL",
    text,
    "",
    "package index for torch",
    "URL",
    read_by="scripts/bootstrap.sh",
)

BY_NAME: dict[str, Setting[object]] = {setting.name: setting for setting in REGISTRY}
assert len(BY_NAME) == len(REGISTRY), "a variable is registered twice"

_read: set[str] = set()


def read(name: str, default: object = COMPUTED) -> Any:  # noqa: ANN401 - typed by its parser
    """The value of the registered variable ``name``: parsed, or its default when unset.

    ``default`` replaces the registered default (for defaults computed from other settings).
    A default given as text is parsed like a value from the environment.
    A malformed value raises ``ImproperlyConfigured`` naming the variable; an unregistered
    name raises ``KeyError``.
    """
    setting = BY_NAME[name]
    _read.add(name)
    fallback = setting.default if default is COMPUTED else default
    raw = os.environ.get(name)
    if raw is not None:
        raw = raw.strip()
    if raw is None or (raw == "" and setting.empty_is_default):
        if isinstance(fallback, _Computed):
            raise ImproperlyConfigured(f"{name} has a computed default: pass it to read()")
        if not isinstance(fallback, str) or setting.parse is text:
            return fallback
        raw = fallback
    try:
        return setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"Environment variable {name}={raw!r} is not a valid {setting.type}: {exc}"
        ) from exc


def names_read() -> frozenset[str]:
    """The variables :func:`read` was asked for in this process (for the registry's test)."""
    return frozenset(_read)
