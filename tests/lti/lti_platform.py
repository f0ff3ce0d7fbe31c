"""A small LTI 1.3 platform for tests, served over real HTTP on 127.0.0.1 in a thread.

It has its own RSA key and JWKS, signs id_tokens, checks the tool's client-credentials JWT at
its token endpoint, and keeps AGS line items and the scores posted to them (refusing, like
Moodle, a score whose timestamp is not newer than the last one for that user). It also answers
NRPS roster requests and LTI Dynamic Registration.

For browser tests it has pages too (``course_url``): a course page that frames the tool's login
(optionally offering the LTI client-side postMessage storage, ``lti_storage_target``, in a
forwarding frame as Canvas does), an OIDC auth endpoint that posts the id_token of a launch
prepared with :meth:`TestPlatform.prepare`, and a deep linking return page that, like Moodle's,
calls ``processContentItemReturnData`` on its parent when framed and on itself when top-level.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
SCOPES = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


_KEYS: dict[str, tuple[rsa.RSAPrivateKey, str]] = {}


def shared_rsa_key(name: str) -> tuple[rsa.RSAPrivateKey, str]:
    """One key per platform name for the whole test run (generating RSA keys is slow)."""
    if name not in _KEYS:
        _KEYS[name] = new_rsa_key()
    return _KEYS[name]


def new_rsa_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key, pem


@dataclass
class RecordedScore:
    line_item_id: str
    body: dict[str, object]
    token: str


@dataclass
class TestPlatform:
    __test__ = False  # not a pytest test class
    name: str = "platform"
    client_id: str = field(default_factory=lambda: "client-" + secrets.token_hex(4))
    deployment_id: str = "deployment-1"
    url: str = ""
    kid: str = field(default_factory=lambda: "platform-key-" + secrets.token_hex(4))
    tool_jwks: dict[str, object] = field(default_factory=dict)
    line_items: dict[str, dict[str, object]] = field(default_factory=dict)
    scores: list[RecordedScore] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    score_failures: list[int] = field(default_factory=list)
    members: list[dict[str, object]] = field(default_factory=list)
    registration_requests: list[dict[str, object]] = field(default_factory=list)
    # Replaces fields of the served OpenID configuration (a hostile platform's document).
    openid_overrides: dict[str, object] = field(default_factory=dict)
    configuration_requests: int = 0
    issued_tokens: set[str] = field(default_factory=set)
    prepared: dict[str, dict[str, object]] = field(default_factory=dict)
    deep_link_returns: list[str] = field(default_factory=list)
    storage_log: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.private_key, self.private_pem = shared_rsa_key(self.name)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what a registration in the tool needs ----------------------------------------------
    @property
    def issuer(self) -> str:
        return f"{self.url}/{self.name}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def jwks(self) -> dict[str, object]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg="RS256", use="sig")
        return {"keys": [jwk]}

    # --- launches --------------------------------------------------------------------------
    def claims(
        self,
        *,
        nonce: str,
        sub: str = "student-1",
        roles: list[str] | None = None,
        message_type: str = "LtiResourceLinkRequest",
        context_id: str = "course-1",
        resource_link_id: str = "link-1",
        item_key: str = "item-1",
        custom: dict[str, str] | None = None,
        line_item: str | None = "",
        with_nrps: bool = True,
        **extra: object,
    ) -> dict[str, object]:
        now = int(time.time())
        body: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": sub,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "name": f"Name of {sub}",
            CLAIM + "message_type": message_type,
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": self.deployment_id,
            CLAIM + "target_link_uri": "https://tool.example/lti/launch/",
            CLAIM + "roles": roles if roles is not None else [LEARNER],
            CLAIM + "context": {"id": context_id, "title": f"Course {context_id}"},
            CLAIM + "tool_platform": {"guid": f"guid-{self.name}", "url": self.url},
            CLAIM + "launch_presentation": {"return_url": f"{self.url}/return"},
        }
        if message_type != "LtiDeepLinkingRequest":
            body[CLAIM + "resource_link"] = {"id": resource_link_id, "title": "Question 1"}
            # ``custom``: what a link placed by deep linking carries; by default an old link's
            body[CLAIM + "custom"] = (
                custom if custom is not None else {"scorebridge_item": item_key}
            )
            ags: dict[str, object] = {
                "scope": SCOPES,
                "lineitems": f"{self.url}/{context_id}/lineitems",
            }
            if line_item == "":
                line_item = self.ensure_line_item(context_id, resource_link_id)
            if line_item:
                ags["lineitem"] = line_item
            body[AGS] = ags
        else:
            body[DL_SETTINGS] = {
                "deep_link_return_url": f"{self.url}/deep-link-return",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "data": "opaque-data",
            }
        if with_nrps:
            body[NRPS] = {
                "context_memberships_url": f"{self.url}/{context_id}/memberships",
                "service_versions": ["2.0"],
            }
        body.update(extra)
        return body

    def sign(
        self,
        claims: Mapping[str, object],
        *,
        key_pem: str | None = None,
        kid: str | None = None,
    ) -> str:
        return jwt.encode(
            dict(claims),
            key_pem or self.private_pem,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )

    def ensure_line_item(
        self, context_id: str, resource_link_id: str, score_maximum: float = 3
    ) -> str:
        with self._lock:
            for line_item_id, data in self.line_items.items():
                if data["context"] == context_id and data.get("resourceLinkId") == resource_link_id:
                    return line_item_id
            line_item_id = f"{self.url}/{context_id}/lineitems/{uuid.uuid4().hex[:8]}"
            self.line_items[line_item_id] = {
                "id": line_item_id,
                "context": context_id,
                "resourceLinkId": resource_link_id,
                "scoreMaximum": score_maximum,
                "label": "Question 1",
            }
            return line_item_id

    # --- pages for a real browser ------------------------------------------------------------
    def prepare(self, login_hint: str, **claims: object) -> str:
        """Keep the claims of a launch; the auth endpoint signs them for ``login_hint``."""
        self.prepared[login_hint] = claims
        return login_hint

    def course_url(
        self, tool_login_url: str, login_hint: str, *, storage_target: str = "", host: str = ""
    ) -> str:
        """A course page that frames the tool's login for the prepared launch ``login_hint``."""
        query = urlencode(
            {
                "login": tool_login_url,
                "hint": login_hint,
                "storage": storage_target,
            }
        )
        base = self.url.replace("127.0.0.1", host) if host else self.url
        return f"{base}/course?{query}"

    def scores_for(self, user_id: str) -> list[dict[str, object]]:
        return [s.body for s in self.scores if s.body.get("userId") == user_id]


def _handler_for(platform: TestPlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: object = None, content_type: str = "") -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            return token if token in platform.issued_tokens else None

        def _html(self, status: int, html: str, headers: Mapping[str, str] | None = None) -> None:
            data = html.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _page(self, path: str, query: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
            """A browser-facing page (status, HTML, headers); None when ``path`` is not one."""
            if path == "/course":
                return 200, _course_page(platform, query), {}
            if path == "/storage-frame":
                return 200, f"<!DOCTYPE html><script>{_STORAGE_JS}</script>", {}
            if path == "/auth":
                claims = platform.prepared.get(query.get("login_hint", ""))
                if claims is None:
                    return 400, "<p id=error>unknown login_hint</p>", {}
                token = platform.sign(platform.claims(nonce=query.get("nonce", ""), **claims))
                fields = {"id_token": token, "state": query.get("state", "")}
                return 200, _auto_post(query.get("redirect_uri", ""), fields), {}
            # Third-party cookie probe: a cookie set top-level, then looked for in a frame.
            if path == "/set-cookie":
                cookie = "sb_plain=1; Path=/; SameSite=None; Secure"
                return 200, "<p id=set>set</p>", {"Set-Cookie": cookie}
            if path == "/echo-cookies":
                return 200, f"<pre id=cookies>{escape(self.headers.get('Cookie', ''))}</pre>", {}
            if path == "/frame":
                src = escape(query.get("src", ""), quote=True)
                return 200, f'<iframe id=probe name=probe src="{src}"></iframe>', {}
            return None

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path = parts.path
            full = platform.url + path
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            page = self._page(path, query)
            if page is not None:
                return self._html(*page)
            if path == "/jwks":
                return self._send(200, platform.jwks())
            if path == "/.well-known/openid-configuration":
                platform.configuration_requests += 1
                return self._send(
                    200,
                    {
                        "issuer": platform.issuer,
                        "authorization_endpoint": platform.auth_url,
                        "token_endpoint": platform.token_url,
                        "jwks_uri": platform.jwks_url,
                        "registration_endpoint": f"{platform.url}/register",
                        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                            "product_family_code": "moodle",
                            "version": "4.5",
                        },
                    }
                    | platform.openid_overrides,
                )
            if not self._authorized():
                return self._send(401, {"error": "no valid token"})
            if path.endswith("/lineitems"):
                with platform._lock:
                    found = [
                        dict(li) for li in platform.line_items.values() if li["id"].startswith(full)
                    ]
                return self._send(200, found, "application/vnd.ims.lis.v2.lineitemcontainer+json")
            if path.endswith("/memberships"):
                return self._send(
                    200,
                    {"id": full, "context": {"id": "c"}, "members": platform.members},
                    "application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
                )
            return self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            raw = self._body()
            if path == "/token":
                return self._token(parse_qs(raw.decode()))
            if path == "/deep-link-return":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                platform.deep_link_returns.append(form.get("JWT", ""))
                return self._html(200, _DEEP_LINK_RETURN_PAGE)
            if path == "/storage-log":
                platform.storage_log.append(json.loads(raw))
                return self._send(204)
            if path == "/register":
                request = json.loads(raw)
                request["_authorization"] = self.headers.get("Authorization", "")
                platform.registration_requests.append(request)
                return self._send(
                    200,
                    {
                        **request,
                        "client_id": platform.client_id,
                        "https://purl.imsglobal.org/spec/lti-tool-configuration": {
                            **request["https://purl.imsglobal.org/spec/lti-tool-configuration"],
                            "deployment_id": platform.deployment_id,
                        },
                    },
                )
            token = self._authorized()
            if not token:
                return self._send(401, {"error": "no valid token"})
            if path.endswith("/lineitems"):
                data = json.loads(raw)
                line_item_id = f"{platform.url}{path}/{uuid.uuid4().hex[:8]}"
                context = path.strip("/").split("/")[0]
                with platform._lock:
                    platform.line_items[line_item_id] = {
                        **data,
                        "id": line_item_id,
                        "context": context,
                    }
                return self._send(201, platform.line_items[line_item_id])
            if path.endswith("/scores"):
                line_item_id = platform.url + path.removesuffix("/scores")
                if line_item_id not in platform.line_items:
                    return self._send(404, {"error": "no such line item"})
                if self.headers.get("Content-Type") != "application/vnd.ims.lis.v1.score+json":
                    return self._send(415, {"error": "wrong content type"})
                if platform.score_failures:
                    return self._send(platform.score_failures.pop(0), {"error": "injected"})
                body = json.loads(raw)
                stamp = datetime.fromisoformat(str(body["timestamp"]))
                with platform._lock:
                    earlier = [
                        datetime.fromisoformat(str(s.body["timestamp"]))
                        for s in platform.scores
                        if s.line_item_id == line_item_id and s.body["userId"] == body["userId"]
                    ]
                    if earlier and stamp <= max(earlier):
                        return self._send(409, {"error": "timestamp not newer"})
                    platform.scores.append(RecordedScore(line_item_id, body, token))
                return self._send(200, {})
            return self._send(404, {"error": "not found"})

        def _token(self, form: dict[str, list[str]]) -> None:
            assertion = form.get("client_assertion", [""])[0]
            try:
                header = jwt.get_unverified_header(assertion)
                (key,) = [
                    k for k in platform.tool_jwks.get("keys", []) if k["kid"] == header["kid"]
                ]
                claims = jwt.decode(
                    assertion,
                    RSAAlgorithm.from_jwk(json.dumps(key)),
                    algorithms=["RS256"],
                    audience=platform.token_url,
                )
            except (ValueError, KeyError, jwt.InvalidTokenError) as exc:
                return self._send(400, {"error": "invalid_client", "detail": str(exc)})
            if claims["iss"] != platform.client_id or claims["sub"] != platform.client_id:
                return self._send(400, {"error": "invalid_client"})
            token = "token-" + secrets.token_hex(8)
            platform.issued_tokens.add(token)
            platform.token_requests.append({"scope": form.get("scope", [""])[0], "token": token})
            return self._send(
                200, {"access_token": token, "token_type": "bearer", "expires_in": 3600}
            )

    return Handler


# --- browser pages --------------------------------------------------------------------------

# The platform's side of the LTI client-side postMessage storage (lti.put_data, lti.get_data),
# one store per tool origin; each message is reported to the platform's storage_log.
_STORAGE_JS = """
var store = {};
function report(entry) {
  fetch("/storage-log", {method: "POST", body: JSON.stringify(entry), keepalive: true});
}
window.addEventListener("message", function (event) {
  var m = event.data;
  if (!m || typeof m !== "object" || typeof m.subject !== "string") { return; }
  var slot = event.origin + " " + m.key;
  var answer = {message_id: m.message_id, key: m.key};
  if (m.subject === "lti.put_data") {
    store[slot] = m.value;
    answer.subject = "lti.put_data.response";
    answer.value = m.value;
  } else if (m.subject === "lti.get_data") {
    answer.subject = "lti.get_data.response";
    if (slot in store) { answer.value = store[slot]; }
    else { answer.error = {code: "bad_request", message: "no such key"}; }
  } else { return; }
  report({subject: m.subject, origin: event.origin, key: m.key, found: !answer.error});
  event.source.postMessage(answer, event.origin);
});
"""


def _course_page(platform: TestPlatform, query: Mapping[str, str]) -> str:
    storage_target = query.get("storage", "")
    params = {
        "iss": platform.issuer,
        "client_id": platform.client_id,
        "login_hint": query.get("hint", ""),
        "target_link_uri": query.get("login", "").replace("/login/", "/launch/"),
        "lti_deployment_id": platform.deployment_id,
    }
    if storage_target:
        params["lti_storage_target"] = storage_target
    src = escape(query.get("login", "") + "?" + urlencode(params), quote=True)
    forwarding = (
        f'<iframe name="{escape(storage_target, quote=True)}" src="/storage-frame" hidden></iframe>'
        if storage_target and storage_target != "_parent"
        else ""
    )
    own_storage = f"<script>{_STORAGE_JS}</script>" if storage_target == "_parent" else ""
    return f"""<!DOCTYPE html><html><head><title>Course</title></head><body>
<h1>Course page</h1>
<p id="dl-result"></p>
{forwarding}
<iframe id="tool" name="tool" src="{src}" width="1000" height="700"></iframe>
{own_storage}
<script>
window.processContentItemReturnData = function (data) {{
  document.getElementById("dl-result").textContent = "item added: " + JSON.stringify(data);
}};
</script>
</body></html>"""


def _auto_post(action: str, fields: Mapping[str, str]) -> str:
    inputs = "".join(
        f'<input type="hidden" name="{escape(k, quote=True)}" value="{escape(v, quote=True)}">'
        for k, v in fields.items()
    )
    return (
        f'<!DOCTYPE html><form id="f" method="post" action="{escape(action, quote=True)}">'
        f"{inputs}</form><script>document.getElementById('f').submit();</script>"
    )


# Moodle's contentitem_return.js: the parent (the course page) when framed, else this window
# itself, which in a new window has no such function ("is not a function").
_DEEP_LINK_RETURN_PAGE = """<!DOCTYPE html><p id="returned">returned</p><script>
var data = {"received": true};
if (window != top) { parent.processContentItemReturnData(data); }
else { window.processContentItemReturnData(data); }
</script>"""
