"""Scorebridge settings: every value comes from the environment, with a one-machine default.

The variables are listed in the README ("Configuration"). A malformed value stops start-up
with ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from scorebridge.config import read

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


VAR_DIR = private_dir(Path(read("SCOREBRIDGE_VAR_DIR", str(BASE_DIR / "var"))).resolve())
ARTIFACTS_DIR = Path(read("SCOREBRIDGE_ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))).resolve()

DEBUG = read("SCOREBRIDGE_DEBUG")


def _secret_key() -> str:
    """The key from SCOREBRIDGE_SECRET_KEY, or from the file SCOREBRIDGE_SECRET_KEY_FILE names,
    or (one machine) a random key generated once and kept in var/secret_key."""
    key = read("SCOREBRIDGE_SECRET_KEY")
    if key:
        return key
    key_file = read("SCOREBRIDGE_SECRET_KEY_FILE")
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
ALLOWED_HOSTS = read("SCOREBRIDGE_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = read("SCOREBRIDGE_CSRF_TRUSTED_ORIGINS")

# --- Production profile (HTTPS) ----------------------------------------------------------------
# SCOREBRIDGE_SECURE=1 turns on everything below for a site served over https (behind a proxy:
# set SCOREBRIDGE_PROXY_SSL_HEADER too); each setting can also be given on its own. Under the
# profile `manage.py check --deploy` reports nothing (tests/scoring/test_settings.py).
SECURE = read("SCOREBRIDGE_SECURE")
SESSION_COOKIE_SECURE = read("SCOREBRIDGE_SESSION_COOKIE_SECURE", SECURE)
CSRF_COOKIE_SECURE = read("SCOREBRIDGE_CSRF_COOKIE_SECURE", SECURE)
SECURE_SSL_REDIRECT = read("SCOREBRIDGE_SSL_REDIRECT", SECURE)
# Load balancers probe /health/ over plain http.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = read("SCOREBRIDGE_HSTS_SECONDS", 31_536_000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = read("SCOREBRIDGE_HSTS_INCLUDE_SUBDOMAINS", SECURE)
# Preloading is a commitment made for the whole domain (hstspreload.org); off unless asked for.
SECURE_HSTS_PRELOAD = read("SCOREBRIDGE_HSTS_PRELOAD")
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"


# Only behind a proxy that sets this header itself (and drops a client's own copy).
SECURE_PROXY_SSL_HEADER = read("SCOREBRIDGE_PROXY_SSL_HEADER")
# Content-Security-Policy for every page (scorebridge.middleware); LTI pages keep their own
# frame-ancestors (the registered platforms). Empty: no header (the default without the profile).
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)
CONTENT_SECURITY_POLICY = read("SCOREBRIDGE_CSP", DEFAULT_CSP if SECURE else "")
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
    # management commands that run ML work in this process (train_items, model_cards --check)
    "workers",
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
    config: dict[str, object] = read("DATABASE_URL", f"sqlite:///{VAR_DIR / 'scorebridge.sqlite3'}")
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
        # Kept open between requests, as for PostgreSQL: closing the last connection of a WAL
        # database checkpoints it, so opening and closing one per request cost about half of an
        # API submission's web time (400 POSTs to one gunicorn worker: 2.6-3.3 s -> 1.6 s).
        config["CONN_MAX_AGE"] = 60
        config["CONN_HEALTH_CHECKS"] = True
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
TIME_ZONE = read("SCOREBRIDGE_TIME_ZONE")
USE_I18N = True
# German and English for the pages students see (the LTI launch's locale chooses).
LOCALE_PATHS = [BASE_DIR / "scoring_plugin" / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(read("SCOREBRIDGE_STATIC_ROOT", str(VAR_DIR / "static")))
private_dir(STATIC_ROOT) if STATIC_ROOT.is_relative_to(VAR_DIR) else STATIC_ROOT.mkdir(
    parents=True, exist_ok=True
)

# Uploads: a CSV of scored answers for one item bank stays well under this.
DATA_UPLOAD_MAX_MEMORY_SIZE = read("SCOREBRIDGE_MAX_UPLOAD_BYTES")
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
        "anon": read("SCOREBRIDGE_API_ANON_RATE"),
        "user": read("SCOREBRIDGE_API_RATE"),
        "batch": read("SCOREBRIDGE_API_BATCH_RATE"),
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
SCORING_BACKBONE = read("SCORING_BACKBONE")
SCORING_BACKEND = read("SCORING_BACKEND")  # auto: torch (fp16) on CUDA, onnx-int8 on CPU
SCORING_DEVICE = read("SCORING_DEVICE")  # "" = cuda when available, else cpu
SCORING_MAX_ANSWER_CHARS = read("SCORING_MAX_ANSWER_CHARS")
# Micro-batching: a scoring worker scores what it gathered once it has this many answers or
# this long after the first one arrived, whichever comes first.
SCORING_BATCH_SIZE = read("SCORING_BATCH_SIZE")
SCORING_BATCH_WAIT_SECONDS = read("SCORING_BATCH_WAIT_SECONDS")
# Intra-op threads of one scoring process; 0 = the cores shared by the scoring processes and
# one share for the web server and broker. More threads than free cores makes torch's thread
# pool spin against itself: on 2 busy cores, 2 threads scored one answer 20x slower than 1.
SCORING_WORKER_PROCESSES = read("SCORING_WORKER_PROCESSES")
SCORING_THREADS = read("SCORING_THREADS")
SCORING_TRAIN_KIND = read("SCORING_TRAIN_KIND")
# Exported ONNX graphs ("" = ~/.cache/scorebridge/onnx, ml_core's default).
SCORING_ONNX_CACHE = read("SCORING_ONNX_CACHE")
# auto: a worker loads the engine after fork when it consumes the scoring queue.
SCOREBRIDGE_PRELOAD_ENGINE = read("SCOREBRIDGE_PRELOAD_ENGINE")
# A worker serves its own Prometheus metrics on this port (0: not served); one port per worker.
SCORING_METRICS_PORT = read("SCORING_METRICS_PORT")
SCORING_METRICS_ADDR = read("SCORING_METRICS_ADDR")

# --- Celery ---------------------------------------------------------------------------------
# No broker configured: kombu's filesystem transport under var/broker, a real broker with no
# server to install. CELERY_BROKER_URL moves it to Redis (redis://) or RabbitMQ (amqp://).
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = read("CELERY_BROKER_URL")
# Training can run for an hour; Redis must not hand an unacknowledged job to another worker
# before then.
CELERY_VISIBILITY_TIMEOUT = read("CELERY_VISIBILITY_TIMEOUT")
# A submission queued longer than this is enqueued again by the sweeper (a message can be lost
# with the filesystem broker on a hard crash); scoring is idempotent, so a duplicate is harmless.
SCOREBRIDGE_REQUEUE_AFTER_SECONDS = read("SCOREBRIDGE_REQUEUE_AFTER_SECONDS")
SCOREBRIDGE_SWEEP_INTERVAL_SECONDS = read("SCOREBRIDGE_SWEEP_INTERVAL_SECONDS")
SCOREBRIDGE_MAX_SCORING_ATTEMPTS = read("SCOREBRIDGE_MAX_SCORING_ATTEMPTS")
SCOREBRIDGE_API_TOKEN_CACHE_SECONDS = read("SCOREBRIDGE_API_TOKEN_CACHE_SECONDS")
# /metrics answers only requests with "Authorization: Bearer <token>"; with no token it is
# closed (403) unless SCOREBRIDGE_METRICS_PUBLIC opens it explicitly.
SCOREBRIDGE_METRICS_TOKEN = read("SCOREBRIDGE_METRICS_TOKEN")
SCOREBRIDGE_METRICS_PUBLIC = read("SCOREBRIDGE_METRICS_PUBLIC")

# Model artifacts: versions name them by a storage key and a content hash. Empty: folders under
# ARTIFACTS_DIR (one machine, or a shared file system). s3://bucket/prefix: an S3-compatible
# object store shared by every machine; workers cache what they fetched in ARTIFACT_CACHE_DIR.


def _artifact_store(url: str) -> str:
    # the same rule as ml_core.artifact_store.S3Location.parse (settings import no ml_core)
    parsed = urlsplit(url)
    if url and (parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment):
        raise ImproperlyConfigured(
            f"SCOREBRIDGE_ARTIFACT_STORE={url!r} must be empty (local folder) or s3://bucket/prefix"
        )
    return url


def _s3_secret() -> str:
    secret = read("SCOREBRIDGE_S3_SECRET_ACCESS_KEY")
    secret_file = read("SCOREBRIDGE_S3_SECRET_ACCESS_KEY_FILE")
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


ARTIFACT_STORE = _artifact_store(read("SCOREBRIDGE_ARTIFACT_STORE"))
ARTIFACT_CACHE_DIR = Path(
    read("SCOREBRIDGE_ARTIFACT_CACHE_DIR", str(VAR_DIR / "artifact-cache"))
).resolve()
S3_ENDPOINT_URL = _endpoint_url(read("SCOREBRIDGE_S3_ENDPOINT_URL"))
S3_REGION = read("SCOREBRIDGE_S3_REGION")
S3_ACCESS_KEY_ID = read("SCOREBRIDGE_S3_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = _s3_secret()
# Review: an answer whose confidence is below its item's threshold (set in admin), else below the
# threshold its model chose at training so that the answers posted without review agree exactly
# with human raters this often (auto models), else below SCOREBRIDGE_REVIEW_THRESHOLD.
SCOREBRIDGE_REVIEW_THRESHOLD = read("SCOREBRIDGE_REVIEW_THRESHOLD")
SCOREBRIDGE_TARGET_AGREEMENT = read("SCOREBRIDGE_TARGET_AGREEMENT")
# Cold start (issue 16): an item's model that trained by itself is activated at this QWK.
SCOREBRIDGE_COLD_START_TARGET_QWK = read("SCOREBRIDGE_COLD_START_TARGET_QWK")


# --- Retention (docs/trust.md): days after which the purge task (beat) removes data ----------
# Answers (with their LTI links, reviews and the training copies made from them) after the
# answer was submitted; imported training data is not touched.
RETAIN_ANSWERS_DAYS = read("SCOREBRIDGE_RETAIN_ANSWERS_DAYS")
# LTI identities (name, email, memberships) not seen in a launch for this long and with no
# answers left.
RETAIN_LTI_IDENTITIES_DAYS = read("SCOREBRIDGE_RETAIN_LTI_IDENTITIES_DAYS")
# Log files under var/log (by last change); expired nonces and sessions go on every run.
RETAIN_LOGS_DAYS = read("SCOREBRIDGE_RETAIN_LOGS_DAYS")
# Free text in audit entries (override comments); the entry itself (who, what, when, scores)
# stays.
RETAIN_AUDIT_DETAILS_DAYS = read("SCOREBRIDGE_RETAIN_AUDIT_DETAILS_DAYS")
SCOREBRIDGE_PURGE_INTERVAL_SECONDS = read("SCOREBRIDGE_PURGE_INTERVAL_SECONDS")
# Gaming check after training (docs/trust.md): generated answers per attack, and the highest
# share of any attack's answers that may earn credit before activation is refused (empty = no
# limit; e.g. 0.2).
SCOREBRIDGE_GAMING_ANSWERS = read("SCOREBRIDGE_GAMING_ANSWERS")
SCOREBRIDGE_GAMING_MAX_CREDIT_RATE: float | None = read("SCOREBRIDGE_GAMING_MAX_CREDIT_RATE")
# Key of the salted hash that stands for an erased student in the audit log (docs/trust.md);
# empty = SECRET_KEY. Keep it stable: with another salt an erasure can no longer be confirmed.
SCOREBRIDGE_PRIVACY_SALT = read("SCOREBRIDGE_PRIVACY_SALT")

# Application log lines go to stdout (containers collect it) or, with SCOREBRIDGE_LOG_DIR (the
# demo sets var/log), are appended to <dir>/scorebridge.log by every process; WatchedFileHandler
# reopens the file after logrotate moves it.
SCOREBRIDGE_LOG_DIR = read("SCOREBRIDGE_LOG_DIR")
if SCOREBRIDGE_LOG_DIR:
    try:
        Path(SCOREBRIDGE_LOG_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SCOREBRIDGE_LOG_DIR={SCOREBRIDGE_LOG_DIR!r} cannot be created: {exc}"
        ) from exc
    _log_handler: dict[str, object] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": str(Path(SCOREBRIDGE_LOG_DIR) / "scorebridge.log"),
        "formatter": "plain",
    }
else:
    _log_handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": "plain",
    }
# Where the retention purge looks for log files: SCOREBRIDGE_LOG_DIR, else var/log.
LOG_DIR = Path(SCOREBRIDGE_LOG_DIR or VAR_DIR / "log").resolve()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Launch page tokens, registration links and tokens are never written (logredact.py).
    "filters": {"redact": {"()": "scorebridge.logredact.RedactFilter"}},
    "handlers": {"app": {**_log_handler, "filters": ["redact"]}},
    "root": {"handlers": ["app"], "level": read("SCOREBRIDGE_LOG_LEVEL")},
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


CACHES = {
    # The default cache holds the API rate-limit counters (scoring_plugin.throttling). Unset it
    # is this process's memory, so each web process counts on its own; SCOREBRIDGE_CACHE_URL
    # (e.g. redis://redis:6379/2) makes every process and machine count together.
    "default": read("SCOREBRIDGE_CACHE_URL"),
    LTI_CACHE_ALIAS: read("SCOREBRIDGE_LTI_CACHE_URL", f"file://{VAR_DIR / 'cache' / 'lti'}"),
}
# How long a launch stays usable in the LMS frame (answer form, polling, review page).
LTI_LAUNCH_TTL_SECONDS = read("SCOREBRIDGE_LTI_LAUNCH_TTL_SECONDS")
# id_tokens older than this (by iat) are refused even when not yet expired; clock skew allowed.
LTI_MAX_TOKEN_AGE_SECONDS = read("SCOREBRIDGE_LTI_MAX_TOKEN_AGE_SECONDS")
LTI_CLOCK_SKEW_SECONDS = read("SCOREBRIDGE_LTI_CLOCK_SKEW_SECONDS")
# A deployment id seen for the first time is recorded inactive until an admin activates it,
# unless this is on (a trusted single-tenant set-up).
LTI_AUTO_ACTIVATE_DEPLOYMENTS = read("SCOREBRIDGE_LTI_AUTO_ACTIVATE_DEPLOYMENTS")
# Dynamic registration (through an admin's one-time link) calls the platform only on public
# addresses over https; this allows http and private/loopback hosts (tests, the demo, a LAN LMS).
LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS = read("SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS")
# Origins allowed to frame tool pages besides the registered platforms (comma-separated),
# e.g. a Canvas institution domain: https://school.instructure.com
LTI_EXTRA_FRAME_ANCESTORS = read("SCOREBRIDGE_LTI_FRAME_ANCESTORS")
# Tool keys: a superseded key stays in the JWKS this long after the next key replaced it.
LTI_KEY_GRACE_DAYS = read("SCOREBRIDGE_LTI_KEY_GRACE_DAYS")
# Grade passback retries (lms queue); backoff with jitter between tries.
LTI_PASSBACK_MAX_RETRIES = read("SCOREBRIDGE_LTI_PASSBACK_MAX_RETRIES")
# The public https origin of this tool (used in Canvas JSON and dynamic registration when the
# request itself cannot tell, e.g. behind a proxy). Empty: taken from the request.
LTI_TOOL_ORIGIN = read("SCOREBRIDGE_LTI_TOOL_ORIGIN").rstrip("/")
LTI_TOOL_TITLE = read("SCOREBRIDGE_LTI_TOOL_TITLE")
