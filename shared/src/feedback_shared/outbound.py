"""Outbound URLs that cannot be turned inward: the checks on notification and webhook targets.

A customer success manager saves notification URLs (Apprise form) and webhook URLs, and the alerts
service later connects to them from inside the cluster. Unchecked, such a URL reaches what only the
cluster can: ``json://169.254.169.254/...`` reads cloud credentials, ``http://10.0.0.5:27017`` probes
the database, ``mailto://x@y?smtp=127.0.0.1`` talks SMTP to a local port. So a URL is checked when
it is saved and again just before each send (DNS may have changed in between: rebinding).

A URL is refused (``OutboundRefused``, whose message names the reason) when

* its scheme is not allowed: notifications take ``ALLOWED_NOTIFY_SCHEMES``, webhooks ``http(s)``;
* it is ambiguous: more than one ``@``, a backslash, whitespace or ``%`` in the host, or a host our
  parser and ``urllib`` read differently (the URL parsers of Apprise, httpx and this module must not
  be able to disagree about where the request goes);
* it carries an Apprise option that moves the connection or loosens the dispatcher's limits (see
  ``REFUSED_OPTIONS``), or ``verify=no`` / ``redirect=yes``, or a ``+Host`` header;
* its host is an IP address written in a non-canonical form (``2852039166``, ``0x7f.1``,
  ``0177.0.0.1``, ``127.1``): C resolvers accept them and Python's ``ipaddress`` does not, so they
  are refused whatever they decode to;
* its host (or, for a name, any address it resolves to) is loopback, link-local (which includes the
  cloud metadata address 169.254.169.254 and fe80::/10), private (10/8, 172.16/12, 192.168/16,
  fc00::/7), unspecified, multicast, reserved or otherwise not globally routable, or one of the
  policy's ``own_addresses``; IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, NAT64, 6to4,
  Teredo) are judged as the IPv4 address;
* its host name does not resolve.

An operator opts a host in with ``OutboundPolicy.allow_hosts``: a host name (exact, case-insensitive)
or an IP address or network. An allow-listed name is not resolved; an allow-listed network admits
the addresses in it (for a name, every address it resolves to must be admitted or public).

Where each scheme connects:

* ``mailto``/``mailtos``: Apprise sends through the SMTP host given by ``smtp=`` (refused here), else
  the well-known provider host for the address's domain (``gmail.com`` -> ``smtp.gmail.com``), else
  the URL's host. The URL's host is checked: it is the domain (``mailto://user:pass@gmail.com``).
* ``slack``: always ``hooks.slack.com`` or ``slack.com``; the URL's host part is a token, not a host.
  There is no host option, so only the options are checked.
* ``msteams``: ``https://{team}.webhook.office.com`` (the old form without a team goes to
  ``outlook.office.com``). The team must be one DNS label, so it cannot name another domain.
  (Apprise 2 dropped ``msteams://`` for ``workflows://``, which is not allowed here.)
* ``json``/``form``/``xml`` (and their ``s`` forms) and webhooks: the URL's host.

The checks do not stop a redirect to an inward host: the dispatcher must not follow redirects
(``AppriseAsset(http_redirects=False)``, ``httpx`` with ``follow_redirects=False``), and should
connect within ``SEND_TIMEOUT_S`` and read at most ``MAX_RESPONSE_BYTES``. A name that resolves to a
public address at the check and an inward one at the connection (rebinding within seconds) is only
stopped by pinning: the sender connects only to ``connectable_addresses`` of the host, resolved and
checked at connection time (the alerts dispatcher's HTTP client does, for every json/form/xml page
and webhook).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALLOWED_NOTIFY_SCHEMES",
    "ALLOWED_WEBHOOK_SCHEMES",
    "MAX_RESPONSE_BYTES",
    "REFUSED_OPTIONS",
    "SEND_TIMEOUT_S",
    "OutboundPolicy",
    "OutboundRefused",
    "check_notify_url",
    "check_webhook_url",
    "connectable_addresses",
    "resolve_with_getaddrinfo",
]

ALLOWED_NOTIFY_SCHEMES = frozenset(
    {"mailto", "mailtos", "slack", "msteams", "json", "jsons", "form", "forms", "xml", "xmls"}
)
ALLOWED_WEBHOOK_SCHEMES = frozenset({"http", "https"})

#: The dispatcher's limits for one send: connect-and-read timeout, and the most of a response it reads.
SEND_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1_000_000

#: Apprise URL options (query keys, as Apprise reads them: lower-cased) refused in a notify URL, and why.
#: Taken from Apprise 2.3's ``URLBase``/``NotifyBase`` (cto, rto, retry, wait), its e-mail plugin
#: (smtp, pgppub, pgpprv, wkd) and its Slack and Workflows plugins (template). ``smtp_host``,
#: ``smtphost`` and ``timeout`` are not URL options today; they are refused so that a future alias
#: cannot slip by. ``verify`` and ``redirect`` are checked by value (see ``_check_options``).
REFUSED_OPTIONS: dict[str, str] = {
    "cto": "sets its own connect timeout",
    "rto": "sets its own read timeout",
    "retry": "retries inside one send, past the dispatcher's timeout and backoff",
    "wait": "sleeps between retries inside one send",
    "smtp": "names its own SMTP host",
    "smtp_host": "names its own SMTP host",
    "smtphost": "names its own SMTP host",
    "timeout": "sets its own timeout",
    "template": "loads a template from a path or URL that is not checked",
    "pgppub": "reads a key file from the server's disk",
    "pgpprv": "reads a key file from the server's disk",
    "wkd": "fetches keys from the recipient's domain (Web Key Directory), a request that is not checked",
}

_FIXED_SAAS_SCHEMES = frozenset({"slack", "msteams"})
_MAIL_SCHEMES = frozenset({"mailto", "mailtos"})
# Apprise's reading of a URL: scheme, then one or more slashes or backslashes.
_URL_RE = re.compile(r"^(?P<scheme>[^:\s/\\]+):[/\\]+(?P<rest>.*)$", re.DOTALL)
_DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TEAM_RE = re.compile(r"^[A-Za-z0-9-]{1,63}$")
# What C's inet_aton takes for an IPv4 address: one to four parts, decimal, octal (0...) or hex (0x...).
_LEGACY_IPV4_PART_RE = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_FALSE_WORDS = ("de", "di", "ne", "f", "n", "no", "of", "0", "fa")  # Apprise's parse_bool, first 2 chars
_TRUE_WORDS = ("en", "al", "t", "y", "ye", "on", "1", "tr")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(ValueError):
    """A notify or webhook URL that may not be saved or sent to; the message names the reason."""


def resolve_with_getaddrinfo(host: str) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), as the system resolver answers."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


class OutboundPolicy(BaseModel):
    """What an outbound URL may reach beyond the public internet."""

    model_config = ConfigDict(frozen=True)

    #: Host names (exact) and IP addresses or networks an operator allows although they are inward,
    #: e.g. ``"127.0.0.0/8"``, ``"localhost"``, ``"smtp.internal"``.
    allow_hosts: frozenset[str] = frozenset()
    #: The services' own addresses, networks or names: refused unless allow-listed.
    own_addresses: frozenset[str] = frozenset()
    #: Host name -> its addresses; raises ``OSError`` (``socket.gaierror``) when it does not resolve.
    resolve: Annotated[Callable[[str], list[str]], Field(exclude=True)] = resolve_with_getaddrinfo


def check_notify_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse a notification URL (Apprise form) that could reach inward; see the module docstring.

    Raises:
        OutboundRefused: naming the reason.
    """
    scheme, netloc, query = _split(url)
    if scheme not in ALLOWED_NOTIFY_SCHEMES:
        raise OutboundRefused(f"scheme {scheme}:// is not an allowed notification scheme")
    _check_options(query)
    userinfo, host, _port = _authority(netloc)
    if scheme == "slack":
        return  # goes to Slack's own hosts whatever the token part says
    if scheme == "msteams":
        if userinfo is not None or not _TEAM_RE.match(host):
            raise OutboundRefused(f"msteams team {host!r} must be a single DNS label")
        return
    if not host:
        what = "mail domain" if scheme in _MAIL_SCHEMES else "host"
        raise OutboundRefused(f"{scheme}:// URL has no {what}")
    _check_host(host, policy)


def check_webhook_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse a webhook URL that is not plain ``http(s)`` or could reach inward.

    Raises:
        OutboundRefused: naming the reason.
    """
    scheme, netloc, _query = _split(url)
    if scheme not in ALLOWED_WEBHOOK_SCHEMES:
        raise OutboundRefused(f"scheme {scheme}:// is not allowed for a webhook (http or https only)")
    _userinfo, host, _port = _authority(netloc)
    if not host:
        raise OutboundRefused("webhook URL has no host")
    _check_host(host, policy)


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, authority, query)`` as Apprise reads them."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url.strip()):
        raise OutboundRefused("URL holds whitespace or control characters")
    match = _URL_RE.match(url.strip())
    if match is None:
        raise OutboundRefused("not a URL of the form scheme://host/...")
    rest = match.group("rest")
    target, _, query = rest.partition("?")
    netloc = re.split(r"[/#]", target, maxsplit=1)[0]
    return match.group("scheme").lower(), netloc, query


def _authority(netloc: str) -> tuple[str | None, str, int | None]:
    """``(userinfo, host, port)`` of an authority, refusing any spelling two parsers could read apart."""
    if "\\" in netloc:
        raise OutboundRefused("URL has a backslash in its host part")
    if netloc.count("@") > 1:
        raise OutboundRefused("URL has more than one '@' in its host part")
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise OutboundRefused(f"malformed IPv6 host {hostport!r}")
        port_text = after[1:] if after else ""
    elif hostport.count(":") > 1:
        raise OutboundRefused(f"host {hostport!r} is an IPv6 address without brackets")
    else:
        host, _, port_text = hostport.partition(":")
    if "%" in host:
        raise OutboundRefused(f"host {host!r} is percent-encoded or has an IPv6 zone")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise OutboundRefused(f"port {port_text!r} is not a port number")
        port = int(port_text)
    host = host.lower().rstrip(".")
    # The standard library must read the same host; otherwise some client may connect elsewhere.
    try:
        expected = urlsplit("http://" + netloc).hostname or ""
    except ValueError:
        raise OutboundRefused("URL has a malformed host part") from None
    if expected.rstrip(".") != host:
        raise OutboundRefused(f"URL host is ambiguous ({host!r} or {expected!r})")
    return (unquote(userinfo) if at else None), host, port


def _check_options(query: str) -> None:
    """Refuse Apprise options that move the connection or loosen the dispatcher's limits."""
    for pair in re.split(r"[&;]", query):
        raw_key, _, raw_value = pair.partition("=")
        key = unquote(raw_key).strip().lower()
        value = unquote(raw_value).strip().lower()
        if key in REFUSED_OPTIONS:
            raise OutboundRefused(f"option {key}= is refused: it {REFUSED_OPTIONS[key]}")
        if key == "verify" and value[:2] not in _TRUE_WORDS:
            raise OutboundRefused("option verify= may only turn certificate checks on")
        if key == "redirect" and value[:2] not in _FALSE_WORDS:
            raise OutboundRefused("option redirect= may only turn redirects off: a redirect is not checked")
        if key.startswith("+") and key[1:].strip() == "host":
            raise OutboundRefused("a Host header is refused: it can route the request to another site")


def _check_host(host: str, policy: OutboundPolicy) -> None:
    allowed_names, _ = _names_and_networks(policy.allow_hosts)
    if _ascii_host(host) in allowed_names and _ip_literal(_ascii_host(host)) is None:
        return  # allow-listed by name: not resolved (it may only resolve inside the cluster)
    connectable_addresses(host, policy)


def connectable_addresses(host: str, policy: OutboundPolicy) -> list[str]:
    """The addresses a connection to ``host`` may use, checked as ``check_notify_url`` checks a host:
    the address itself for an IP literal, else every address the name resolves to (each must pass, or
    the host is refused). A sender connects only to these (pinning): a name that resolved to a public
    address at the check and resolves inward by the connection (DNS rebinding) never gets through.

    Raises:
        OutboundRefused: naming the reason.
    """
    allowed_names, allowed_networks = _names_and_networks(policy.allow_hosts)
    own_names, own_networks = _names_and_networks(policy.own_addresses)
    host = _ascii_host(host)
    literal = _ip_literal(host)
    if literal is not None:
        _check_address(literal, host, None, allowed_networks, own_networks)
        return [str(literal)]
    if host not in allowed_names:
        _check_host_name(host)
        if host in own_names:
            raise OutboundRefused(f"host {host} is one of the services' own addresses")
    try:
        answers = policy.resolve(host)
    except (OSError, UnicodeError) as exc:
        raise OutboundRefused(f"host {host} does not resolve ({exc})") from None
    if not answers:
        raise OutboundRefused(f"host {host} does not resolve (no addresses)")
    if host in allowed_names:
        return list(answers)
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer.partition("%")[0])
        except ValueError:
            raise OutboundRefused(f"host {host} resolves to {answer!r}, which is not an address") from None
        _check_address(address, host, answer, allowed_networks, own_networks)
    return list(answers)


def _ascii_host(host: str) -> str:
    """``host`` in ASCII (IDNA), as resolvers see it: full-width ``１２７.０.０.１`` is ``127.0.0.1``."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode().lower()
    except UnicodeError:
        raise OutboundRefused(f"host {host!r} is not a valid host name") from None


def _check_host_name(host: str) -> None:
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL_RE.match(label) for label in labels):
        raise OutboundRefused(f"host {host!r} is not a valid host name")


def _ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it is an IP address; refuses non-canonical IPv4 spellings."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not all(_LEGACY_IPV4_PART_RE.match(part) for part in parts):
        return None  # a name (at least one label is not a number)
    decoded = _inet_aton(parts)
    if decoded is None:
        raise OutboundRefused(f"host {host} is neither a host name nor a valid IP address")
    reason = _inward_reason(decoded)
    what = f"{decoded}, which is {reason}" if reason else str(decoded)
    raise OutboundRefused(f"host {host} is a non-canonical spelling of the IP address {what}")


def _inet_aton(parts: list[str]) -> ipaddress.IPv4Address | None:
    """What C's ``inet_aton`` makes of 1-4 numeric parts: the last part fills the remaining bytes."""
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if part.startswith("0x"):
            if len(part) == 2:
                return None
            values.append(int(part, 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for value in leading:
        number = number * 256 + value
    number = number * 256 ** (5 - len(values)) + last
    return ipaddress.IPv4Address(number)


def _names_and_networks(entries: frozenset[str]) -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            names.add(entry.strip().lower().rstrip("."))
    return names, networks


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _inward_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None if it is one."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = _inward_reason(embedded)
        return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def _check_address(
    address: IPAddress,
    host: str,
    answer: str | None,
    allowed: list[IPNetwork],
    own: list[IPNetwork],
) -> None:
    embedded = _embedded_ipv4(address)
    candidates = [address] if embedded is None else [address, embedded]
    if any(candidate in network for candidate in candidates for network in allowed):
        return
    subject = f"host {host}" if answer is None else f"host {host} resolves to {answer}, which"
    if any(candidate in network for candidate in candidates for network in own):
        raise OutboundRefused(f"{subject} is one of the services' own addresses")
    reason = _inward_reason(address)
    if reason is not None:
        raise OutboundRefused(f"{subject} is {reason}")
