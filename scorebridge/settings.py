"""Scorebridge settings: every value comes from the environment, with a one-machine default.

The variables are listed in the README ("Configuration"). A malformed value stops start-up
with ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from scorebridge.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything a running instance writes (SQLite database, broker folders, model artifacts, the
# generated secret key) lives under one folder, so one machine needs no other set-up.
# It holds the database (API token hashes, the tool's LTI private keys), so it is private to
# the user that runs Scorebridge: folders 0700, the database and key files 0600.


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700); an existing folder of ours open to others is tightened."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_mode(path, 0o700)
    return path


def private_mode(path: Path, mode: int = 0o600) -> None:
    """Take group and other permissions away from ``path`` when this user owns it."""
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(mode)
    except OSError:
        pass


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists; tighten it if it does."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        pass
    private_mode(path)
    return path


VAR_DIR = private_dir(Path(env_str("SCOREBRIDGE_VAR_DIR", str(BASE_DIR / "var"))).resolve())
ARTIFACTS_DIR = Path(env_str("SCOREBRIDGE_ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))).resolve()

DEBUG = env_bool("SCOREBRIDGE_DEBUG", False)


def _secret_key() -> str:
    """The key from SCOREBRIDGE_SECRET_KEY, or from the file SCOREBRIDGE_SECRET_KEY_FILE names,
    or (one machine) a random key generated once and kept in var/secret_key."""
    key = env_str("SCOREBRIDGE_SECRET_KEY", "")
    if key:
        return key
    key_file = env_str("SCOREBRIDGE_SECRET_KEY_FILE", "")
    if key_file:
        try:
            return Path(key_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"SCOREBRIDGE_SECRET_KEY_FILE={key_file!r} cannot be read: {exc}"
            ) from exc
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    private_mode(path)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("SCOREBRIDGE_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("SCOREBRIDGE_CSRF_TRUSTED_ORIGINS", [])

# --- Production profile (HTTPS) ----------------------------------------------------------------
# SCOREBRIDGE_SECURE=1 turns on everything below for a site served over https (behind a proxy:
# set SCOREBRIDGE_PROXY_SSL_HEADER too); each setting can also be given on its own. Under the
# profile `manage.py check --deploy` reports nothing (tests/scoring/test_settings.py).
SECURE = env_bool("SCOREBRIDGE_SECURE", False)
SESSION_COOKIE_SECURE = env_bool("SCOREBRIDGE_SESSION_COOKIE_SECURE", SECURE)
CSRF_COOKIE_SECURE = env_bool("SCOREBRIDGE_CSRF_COOKIE_SECURE", SECURE)
SECURE_SSL_REDIRECT = env_bool("SCOREBRIDGE_SSL_REDIRECT", SECURE)
# Load balancers probe /health/ over plain http.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env_int("SCOREBRIDGE_HSTS_SECONDS", 31_536_000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCOREBRIDGE_HSTS_INCLUDE_SUBDOMAINS", SECURE)
# Preloading is a commitment made for the whole domain (hstspreload.org); off unless asked for.
SECURE_HSTS_PRELOAD = env_bool("SCOREBRIDGE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto: https`` -> ``("HTTP_X_FORWARDED_PROTO", "https")``."""
    if not value:
        return None
    name, sep, expected = value.partition(":")
    name, expected = name.strip(), expected.strip()
    if not sep or not name or not expected or not name.replace("-", "").isalnum():
        raise ImproperlyConfigured(
            f"SCOREBRIDGE_PROXY_SSL_HEADER={value!r} must look like 'X-Forwarded-Proto: https'"
        )
    return "HTTP_" + name.upper().replace("-", "_"), expected


# Only behind a proxy that sets this header itself (and drops a client's own copy).
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SCOREBRIDGE_PROXY_SSL_HEADER", ""))
# Content-Security-Policy for every page (scorebridge.middleware); LTI pages keep their own
# frame-ancestors (the registered platforms). Empty: no header (the default without the profile).
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)
CONTENT_SECURITY_POLICY = env_str("SCOREBRIDGE_CSP", DEFAULT_CSP if SECURE else "")
if CONTENT_SECURITY_POLICY.lower() in ("off", "none"):
    CONTENT_SECURITY_POLICY = ""

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",  # only for migrating its plain-text tokens (scoring_plugin 0005)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "scoring_plugin",
    "lti_tool",
    "lti",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "scorebridge.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Cookies set under /lti/ become SameSite=None; Secure; Partitioned (LMS iframes).
    "lti.middleware.LtiCookieMiddleware",
]

ROOT_URLCONF = "scorebridge.urls"
WSGI_APPLICATION = "scorebridge.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'scorebridge.sqlite3'}")
    try:
        config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} is not a database URL: {exc}") from exc
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Created 0600 before SQLite opens it (its -wal and -shm files take the same mode);
        # scorebridge.apps tightens test databases and files made by older versions.
        if str(config.get("NAME", "")) not in ("", ":memory:"):
            private_file(Path(str(config["NAME"])))
        # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock at
        # the start of a transaction, so two writers wait instead of failing with "locked".
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        config["CONN_MAX_AGE"] = 0
        # Tests that start worker processes need a database file they can open too.
        config["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = env_str("SCOREBRIDGE_TIME_ZONE", "UTC")
USE_I18N = True
# German and English for the pages students see (the LTI launch's locale chooses).
LOCALE_PATHS = [BASE_DIR / "scoring_plugin" / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("SCOREBRIDGE_STATIC_ROOT", str(VAR_DIR / "static")))
private_dir(STATIC_ROOT) if STATIC_ROOT.is_relative_to(VAR_DIR) else STATIC_ROOT.mkdir(
    parents=True, exist_ok=True
)

# Uploads: a CSV of scored answers for one item bank stays well under this.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "SCOREBRIDGE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # "Authorization: Token <key>", checked against stored SHA-256 hashes.
        "scoring_plugin.tokens.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested too deeply is a 400, not a RecursionError (500).
    "DEFAULT_PARSER_CLASSES": [
        "scoring_plugin.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Rates are per client: per API token or user, per IP address for anonymous requests.
    # Counted with atomic increments in the default cache (SCOREBRIDGE_CACHE_URL): shared by
    # every web process when that cache is Redis.
    "DEFAULT_THROTTLE_CLASSES": [
        "scoring_plugin.throttling.AnonRateThrottle",
        "scoring_plugin.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("SCOREBRIDGE_API_ANON_RATE", "60/minute"),
        "user": env_str("SCOREBRIDGE_API_RATE", "6000/minute"),
        "batch": env_str("SCOREBRIDGE_API_BATCH_RATE", "120/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Scorebridge API",
    "DESCRIPTION": "Submit students' short answers and read their automatic scores.",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Scoring --------------------------------------------------------------------------------
# Any Hugging Face model name or local folder; empty means the packaged all-MiniLM-L6-v2.
SCORING_BACKBONE = env_str("SCORING_BACKBONE", "")
SCORING_BACKEND = env_choice(
    "SCORING_BACKEND", "auto", ("auto", "torch", "onnx", "onnx-int8")
)  # auto: torch (fp16) on CUDA, onnx-int8 on CPU
SCORING_DEVICE = env_str("SCORING_DEVICE", "")  # "" = cuda when available, else cpu
SCORING_MAX_ANSWER_CHARS = env_int("SCORING_MAX_ANSWER_CHARS", 10_000, minimum=1)
# Micro-batching: a scoring worker scores what it gathered once it has this many answers or
# this long after the first one arrived, whichever comes first.
SCORING_BATCH_SIZE = env_int("SCORING_BATCH_SIZE", 32, minimum=1)
SCORING_BATCH_WAIT_SECONDS = env_float("SCORING_BATCH_WAIT_SECONDS", 0.02, minimum=0.001)
# Intra-op threads of one scoring process; 0 = the cores shared by the scoring processes and
# one share for the web server and broker. More threads than free cores makes torch's thread
# pool spin against itself: on 2 busy cores, 2 threads scored one answer 20x slower than 1.
SCORING_WORKER_PROCESSES = env_int("SCORING_WORKER_PROCESSES", 1, minimum=1)
SCORING_THREADS = env_int("SCORING_THREADS", 0, minimum=0)
SCORING_TRAIN_KIND = env_choice("SCORING_TRAIN_KIND", "auto", ("auto", "head", "lora", "full"))
# A worker serves its own Prometheus metrics on this port (0: not served); one port per worker.
SCORING_METRICS_PORT = env_int("SCORING_METRICS_PORT", 0, minimum=0)
SCORING_METRICS_ADDR = env_str("SCORING_METRICS_ADDR", "127.0.0.1")

# --- Celery ---------------------------------------------------------------------------------
# No broker configured: kombu's filesystem transport under var/broker, a real broker with no
# server to install. CELERY_BROKER_URL moves it to Redis (redis://) or RabbitMQ (amqp://).
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_BROKER_SCHEMES = ("filesystem://", "redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")
if not CELERY_BROKER_URL.startswith(_BROKER_SCHEMES):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} must start with one of {', '.join(_BROKER_SCHEMES)}"
    )
# Training can run for an hour; Redis must not hand an unacknowledged job to another worker
# before then.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=60)
# A submission queued longer than this is enqueued again by the sweeper (a message can be lost
# with the filesystem broker on a hard crash); scoring is idempotent, so a duplicate is harmless.
SCOREBRIDGE_REQUEUE_AFTER_SECONDS = env_int("SCOREBRIDGE_REQUEUE_AFTER_SECONDS", 120, minimum=5)
SCOREBRIDGE_SWEEP_INTERVAL_SECONDS = env_int("SCOREBRIDGE_SWEEP_INTERVAL_SECONDS", 60, minimum=1)
SCOREBRIDGE_MAX_SCORING_ATTEMPTS = env_int("SCOREBRIDGE_MAX_SCORING_ATTEMPTS", 5, minimum=1)
# /metrics answers only requests with "Authorization: Bearer <token>"; with no token it is
# closed (403) unless SCOREBRIDGE_METRICS_PUBLIC opens it explicitly.
SCOREBRIDGE_METRICS_TOKEN = env_str("SCOREBRIDGE_METRICS_TOKEN", "")
SCOREBRIDGE_METRICS_PUBLIC = env_bool("SCOREBRIDGE_METRICS_PUBLIC", False)

# Model artifacts: versions name them by a storage key and a content hash. Empty: folders under
# ARTIFACTS_DIR (one machine, or a shared file system). s3://bucket/prefix: an S3-compatible
# object store shared by every machine; workers cache what they fetched in ARTIFACT_CACHE_DIR.


def _artifact_store(url: str) -> str:
    if url:
        from ml_core.artifact_store import S3Location

        try:
            S3Location.parse(url)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"SCOREBRIDGE_ARTIFACT_STORE={url!r} must be empty (local folder) or "
                "s3://bucket/prefix"
            ) from exc
    return url


def _s3_secret() -> str:
    secret = env_str("SCOREBRIDGE_S3_SECRET_ACCESS_KEY", "")
    secret_file = env_str("SCOREBRIDGE_S3_SECRET_ACCESS_KEY_FILE", "")
    if secret or not secret_file:
        return secret
    try:
        return Path(secret_file).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SCOREBRIDGE_S3_SECRET_ACCESS_KEY_FILE={secret_file!r} cannot be read: {exc}"
        ) from exc


def _endpoint_url(url: str) -> str:
    if url and not url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"SCOREBRIDGE_S3_ENDPOINT_URL={url!r} must be an http(s) URL")
    return url


ARTIFACT_STORE = _artifact_store(env_str("SCOREBRIDGE_ARTIFACT_STORE", ""))
ARTIFACT_CACHE_DIR = Path(
    env_str("SCOREBRIDGE_ARTIFACT_CACHE_DIR", str(VAR_DIR / "artifact-cache"))
).resolve()
S3_ENDPOINT_URL = _endpoint_url(env_str("SCOREBRIDGE_S3_ENDPOINT_URL", ""))
S3_REGION = env_str("SCOREBRIDGE_S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = env_str("SCOREBRIDGE_S3_ACCESS_KEY_ID", "")
S3_SECRET_ACCESS_KEY = _s3_secret()
# Review: an answer whose confidence is below its item's threshold (set in admin), else below the
# threshold its model chose at training so that the answers posted without review agree exactly
# with human raters this often (auto models), else below SCOREBRIDGE_REVIEW_THRESHOLD.
SCOREBRIDGE_REVIEW_THRESHOLD = env_float("SCOREBRIDGE_REVIEW_THRESHOLD", 0.6, minimum=0.0)
SCOREBRIDGE_TARGET_AGREEMENT = env_float("SCOREBRIDGE_TARGET_AGREEMENT", 0.90, minimum=0.0)
if SCOREBRIDGE_TARGET_AGREEMENT > 1.0:
    raise ImproperlyConfigured(
        f"SCOREBRIDGE_TARGET_AGREEMENT={SCOREBRIDGE_TARGET_AGREEMENT} must be a fraction (0..1)"
    )


def _retention_days(key: str, default: int) -> int | None:
    """Days to keep a kind of data; 0 or empty = keep it forever (None)."""
    if key in os.environ and not os.environ[key].strip():
        return None
    return env_int(key, default, minimum=0) or None


# --- Retention (docs/trust.md): days after which the purge task (beat) removes data ----------
# Answers (with their LTI links, reviews and the training copies made from them) after the
# answer was submitted; imported training data is not touched.
RETAIN_ANSWERS_DAYS = _retention_days("SCOREBRIDGE_RETAIN_ANSWERS_DAYS", 730)
# LTI identities (name, email, memberships) not seen in a launch for this long and with no
# answers left.
RETAIN_LTI_IDENTITIES_DAYS = _retention_days("SCOREBRIDGE_RETAIN_LTI_IDENTITIES_DAYS", 730)
# Log files under var/log (by last change); expired nonces and sessions go on every run.
RETAIN_LOGS_DAYS = _retention_days("SCOREBRIDGE_RETAIN_LOGS_DAYS", 90)
# Free text in audit entries (override comments); the entry itself (who, what, when, scores)
# stays.
RETAIN_AUDIT_DETAILS_DAYS = _retention_days("SCOREBRIDGE_RETAIN_AUDIT_DETAILS_DAYS", 730)
SCOREBRIDGE_PURGE_INTERVAL_SECONDS = env_int(
    "SCOREBRIDGE_PURGE_INTERVAL_SECONDS", 24 * 3600, minimum=1
)
LOG_DIR = Path(env_str("SCOREBRIDGE_LOG_DIR", str(VAR_DIR / "log"))).resolve()
# Gaming check after training (docs/trust.md): generated answers per attack, and the highest
# share of any attack's answers that may earn credit before activation is refused (empty = no
# limit; e.g. 0.2).
SCOREBRIDGE_GAMING_ANSWERS = env_int("SCOREBRIDGE_GAMING_ANSWERS", 20, minimum=1)
SCOREBRIDGE_GAMING_MAX_CREDIT_RATE: float | None = (
    env_float("SCOREBRIDGE_GAMING_MAX_CREDIT_RATE", 1.0, minimum=0.0)
    if os.environ.get("SCOREBRIDGE_GAMING_MAX_CREDIT_RATE", "").strip()
    else None
)
# Key of the salted hash that stands for an erased student in the audit log (docs/trust.md);
# empty = SECRET_KEY. Keep it stable: with another salt an erasure can no longer be confirmed.
SCOREBRIDGE_PRIVACY_SALT = env_str("SCOREBRIDGE_PRIVACY_SALT", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Launch page tokens, registration links and tokens are never written (logredact.py).
    "filters": {"redact": {"()": "scorebridge.logredact.RedactFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env_str("SCOREBRIDGE_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["redact"]},
        "django.server": {"filters": ["redact"]},
        "lti": {"filters": ["redact"]},
    },
}

# --- LTI 1.3 (lti/, see docs/lti.md) ---------------------------------------------------------
# Launch data, OIDC state and nonces, and platform access tokens live in this cache. It must be
# shared by every web and worker process: by default a file cache under var/cache/lti;
# SCOREBRIDGE_LTI_CACHE_URL may name redis://host:6379/1 or db://table_name instead.
LTI_CACHE_ALIAS = "lti"


def _cache(variable: str, url: str) -> dict[str, object]:
    if url.startswith(("redis://", "rediss://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if url.startswith("db://") and len(url) > len("db://"):
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": url[len("db://") :],
        }
    if url.startswith("file://") and len(url) > len("file://"):
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": url[len("file://") :],
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    if url == "locmem://":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    raise ImproperlyConfigured(
        f"{variable}={url!r} must start with file://, db://, redis:// or rediss://"
        + (" (or be locmem://)" if variable == "SCOREBRIDGE_CACHE_URL" else "")
    )


CACHES = {
    # The default cache holds the API rate-limit counters (scoring_plugin.throttling). Unset it
    # is this process's memory, so each web process counts on its own; SCOREBRIDGE_CACHE_URL
    # (e.g. redis://redis:6379/2) makes every process and machine count together.
    "default": _cache("SCOREBRIDGE_CACHE_URL", env_str("SCOREBRIDGE_CACHE_URL", "locmem://")),
    LTI_CACHE_ALIAS: _cache(
        "SCOREBRIDGE_LTI_CACHE_URL",
        env_str("SCOREBRIDGE_LTI_CACHE_URL", f"file://{VAR_DIR / 'cache' / 'lti'}"),
    ),
}
# How long a launch stays usable in the LMS frame (answer form, polling, review page).
LTI_LAUNCH_TTL_SECONDS = env_int("SCOREBRIDGE_LTI_LAUNCH_TTL_SECONDS", 8 * 3600, minimum=300)
# id_tokens older than this (by iat) are refused even when not yet expired; clock skew allowed.
LTI_MAX_TOKEN_AGE_SECONDS = env_int("SCOREBRIDGE_LTI_MAX_TOKEN_AGE_SECONDS", 600, minimum=30)
LTI_CLOCK_SKEW_SECONDS = env_int("SCOREBRIDGE_LTI_CLOCK_SKEW_SECONDS", 60, minimum=0)
# A deployment id seen for the first time is recorded inactive until an admin activates it,
# unless this is on (a trusted single-tenant set-up).
LTI_AUTO_ACTIVATE_DEPLOYMENTS = env_bool("SCOREBRIDGE_LTI_AUTO_ACTIVATE_DEPLOYMENTS", False)
# Dynamic registration (through an admin's one-time link) calls the platform only on public
# addresses over https; this allows http and private/loopback hosts (tests, the demo, a LAN LMS).
LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = env_bool(
    "SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS", False
)
# Origins allowed to frame tool pages besides the registered platforms (comma-separated),
# e.g. a Canvas institution domain: https://school.instructure.com
LTI_EXTRA_FRAME_ANCESTORS = env_list("SCOREBRIDGE_LTI_FRAME_ANCESTORS", [])
# Tool keys: a superseded key stays in the JWKS this long after the next key replaced it.
LTI_KEY_GRACE_DAYS = env_int("SCOREBRIDGE_LTI_KEY_GRACE_DAYS", 7, minimum=0)
# Grade passback retries (lms queue); backoff with jitter between tries.
LTI_PASSBACK_MAX_RETRIES = env_int("SCOREBRIDGE_LTI_PASSBACK_MAX_RETRIES", 8, minimum=0)
# The public https origin of this tool (used in Canvas JSON and dynamic registration when the
# request itself cannot tell, e.g. behind a proxy). Empty: taken from the request.
LTI_TOOL_ORIGIN = env_str("SCOREBRIDGE_LTI_TOOL_ORIGIN", "").rstrip("/")
LTI_TOOL_TITLE = env_str("SCOREBRIDGE_LTI_TOOL_TITLE", "Scorebridge")
