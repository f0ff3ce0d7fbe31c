"""Outbound HTTP for dynamic registration, restricted so that it cannot be used as a proxy.

* only ``http``/``https`` URLs, ``https`` unless private hosts are allowed (tests, the demo);
* the host name is resolved once and *every* address it resolves to must be public (not
  loopback, private, link-local, multicast, reserved or unspecified) unless
  ``SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS`` is on; the connection then goes to the
  address that was checked (no second lookup that a rebinding DNS server could answer
  differently), with the original host name for ``Host``, SNI and certificate checks;
* no redirects, no environment proxies, a short timeout and a cap on the response size.

Every refusal raises :class:`OutboundError`, whose text is for the server log only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024


class OutboundError(Exception):
    """A refused or failed outbound request; the message is for the log, not for the caller."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def parse(url: str) -> Target:
    """Scheme, host, port and path of ``url``; refused when it is not a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundError(f"malformed URL {url!r}: {exc}") from exc
    allowed = ("https", "http") if settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS else ("https",)
    if parts.scheme not in allowed:
        raise OutboundError(f"URL scheme of {url!r} is not one of {', '.join(allowed)}")
    if not parts.hostname or parts.username or parts.password:
        raise OutboundError(f"URL {url!r} has no host, or has credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        path=path,
    )


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
    )


def resolve(target: Target) -> str:
    """One address of ``target.host`` to connect to, after checking every address it has."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve {target.host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundError(f"{target.host!r} resolves to no address")
    if not settings.LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise OutboundError(
                f"{target.host!r} resolves to non-public address(es) {', '.join(private)}; "
                "set SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS=1 to allow them"
            )
    return addresses[0]


def check_url(url: str) -> Target:
    """Refuse a URL the tool would store and later call (keys, tokens) on a private host."""
    target = parse(url)
    resolve(target)
    return target


def _ca_bundle() -> str:
    found = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if found:
        return found
    import certifi

    return str(certifi.where())


def request_json(
    method: str, url: str, *, headers: dict[str, str] | None = None, body: object = None
) -> object:
    """Send one request to ``url`` (checked as above) and return the JSON it answers."""
    target = parse(url)
    address = resolve(target)
    send_headers = {"Accept": "application/json", **(headers or {})}
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    send_headers["Host"] = netloc
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        send_headers["Content-Type"] = "application/json"
    timeout = urllib3.Timeout(connect=TIMEOUT_SECONDS, read=TIMEOUT_SECONDS)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=_ca_bundle(),
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False)
    try:
        response = pool.urlopen(
            method,
            target.path,
            body=data,
            headers=send_headers,
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            raw = response.read(MAX_RESPONSE_BYTES + 1)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundError(f"{method} {url} failed: {exc}") from exc
    finally:
        pool.close()
    if len(raw) > MAX_RESPONSE_BYTES:
        raise OutboundError(f"{method} {url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
    if not 200 <= response.status < 300:
        raise OutboundError(f"{method} {url} answered HTTP {response.status}: {raw[:300]!r}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise OutboundError(f"{method} {url} did not answer JSON: {exc}") from exc
