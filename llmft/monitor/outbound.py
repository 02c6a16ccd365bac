"""Requests the service sends on a tenant's behalf (alert webhooks): to public addresses only.

    refused_literal("http://127.1:6379/")         # -> "refused: address not allowed" (no DNS lookup)
    post_json(url, payload, allow_private=False)  # -> None when delivered, else a reason a tenant may read
    masked("https://u:t@hooks.slack.com/services/T/B/x?k=1")  # -> "https://***@hooks.slack.com/***"

A webhook is a server-side request the tenant aims: left open, it reaches the service's own Redis,
PostgreSQL and cloud metadata, and its errors map their ports. So the host is resolved once, every
address it resolves to must be public (not loopback, private, link-local, multicast, unspecified or
reserved, also when wrapped in IPv6: ::ffff:127.0.0.1, 6to4, Teredo), and the connection goes to the
address that was checked, never to a second lookup that DNS rebinding could answer differently.
Redirects are not followed. WEBHOOK_ALLOW_PRIVATE (an operator's setting) lifts the address check.
A tenant reads a generic reason; the server log gets the detail, with the URL masked.
"""

import base64
import http.client
import ipaddress
import json
import logging
import socket
import ssl
from urllib.parse import SplitResult, unquote, urlsplit

REFUSED = "refused: address not allowed"
FAILED = "delivery failed"
log = logging.getLogger("llmft.outbound")


class Refused(Exception):
    """The URL's host is, or resolves to, an address the service does not send to."""


def masked(url: str) -> str:
    """The URL with its userinfo, path and query replaced by *** (a Slack webhook's secret is its path)."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    rest = "/***" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{'***@' if userinfo else ''}{host}{rest}"


def public(address: str) -> bool:
    """True for an address on the public internet (IPv4 inside IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id (fe80::1%eth0) names no other address
    if ip.version == 6:
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return public(str(inner))
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
                                 or ip.is_link_local or ip.is_private)


def refused_literal(url: str) -> str | None:
    """Why the URL is refused before any lookup (its host is a non-public address in any numeric form, such as
    0x7f000001, 2130706433 or 127.1, or a .localhost name), else None. Names are checked at delivery."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return REFUSED
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None  # a name: resolved and checked when an alert is delivered
    return REFUSED if any(not public(info[4][0]) for info in infos) else None


def resolve(url: str, *, allow_private: bool) -> tuple[SplitResult, list[str], int]:
    """The URL's parts, the addresses to connect to (in order) and the port; Refused if any address it resolves to
    is not public (unless allow_private)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {masked(url)}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    addresses = [info[4][0] for info in infos]
    if not allow_private and not all(public(address) for address in addresses):
        raise Refused(f"{masked(url)} resolves to {', '.join(dict.fromkeys(addresses))}")
    return parts, list(dict.fromkeys(addresses)), port


def post_json(url: str, payload: dict, *, allow_private: bool, timeout: float) -> str | None:
    """POST the payload once. None when answered 2xx; else a reason a tenant may read (REFUSED, FAILED or
    "HTTP <status>"), the detail logged with the URL masked."""
    try:
        parts, addresses, port = resolve(url, allow_private=allow_private)
        status = _post(parts, addresses, port, json.dumps(payload).encode(), timeout)
    except Refused as error:
        log.warning("webhook refused: %s", error)
        return REFUSED
    except (OSError, ValueError, http.client.HTTPException) as error:  # DNS, connect, TLS, a bad port, a bad reply
        log.warning("webhook %s failed: %s: %s", masked(url), type(error).__name__, error)
        return FAILED
    if 200 <= status < 300:
        return None
    return f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A connection to the first of the checked addresses that answers (no lookup: they are numbers)."""
    for address in addresses[:-1]:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError:
            continue
    return socket.create_connection((addresses[-1], port), timeout=timeout)


def _post(parts: SplitResult, addresses: list[str], port: int, body: bytes, timeout: float) -> int:
    """The response status of one POST sent to a checked address, with the URL's host as Host, TLS name and
    certificate."""
    host = parts.hostname
    sock = _connect(addresses, port, timeout)
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.sock = sock  # already connected to the checked address: no second lookup
        name = f"[{host}]" if ":" in host else host
        headers = {"Host": name if port == (443 if parts.scheme == "https" else 80) else f"{name}:{port}",
                   "Content-Type": "application/json", "User-Agent": "llmft-alerts"}
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        return connection.getresponse().status
    finally:
        sock.close()
