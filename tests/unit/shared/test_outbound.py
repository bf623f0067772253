from __future__ import annotations

import socket

import pytest

from feedback_shared.outbound import (
    ALLOWED_NOTIFY_SCHEMES,
    MAX_RESPONSE_BYTES,
    REFUSED_OPTIONS,
    SEND_TIMEOUT_S,
    OutboundPolicy,
    OutboundRefused,
    check_notify_url,
    check_webhook_url,
)

# A fake DNS: no test touches the network.
DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "mail.example.org": ["93.184.216.35", "2606:2800:220:1:248:1893:25c8:1946"],
    "gmail.com": ["142.250.185.69"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.5"],  # public and private: DNS rebinding
    "metadata.example.com": ["169.254.169.254"],
    "v6only.example.com": ["fd00::5"],
    "mapped.example.com": ["::ffff:10.0.0.5"],
    "smtp.internal": ["10.1.2.3"],
    "alerts.example.com": ["203.0.113.10"],
    "shared.example.com": ["100.64.0.1"],
}


def fake_resolve(host: str) -> list[str]:
    assert host.isascii(), host
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


POLICY = OutboundPolicy(resolve=fake_resolve)


def refused(check: object, url: str, policy: OutboundPolicy = POLICY) -> str:
    assert callable(check)
    with pytest.raises(OutboundRefused) as info:
        check(url, policy)
    return str(info.value)


# --- schemes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mailto://user:pass@gmail.com",
        "mailtos://user:pass@mail.example.org?to=csm@example.org",
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#alerts",
        "slack://bot@xoxb-1234-1234-abc4/#general",
        "msteams://contoso/tokenA/tokenB/tokenC",
        "json://hooks.example.com/alerts",
        "jsons://hooks.example.com:8443/alerts?+Idempotency-Key=abc&method=PUT",
        "form://hooks.example.com/alerts",
        "forms://hooks.example.com/alerts",
        "xml://hooks.example.com/alerts",
        "xmls://hooks.example.com/alerts?verify=yes&redirect=no",
        "JSON://Hooks.Example.Com./alerts",  # scheme and host case, and a trailing dot
    ],
)
def test_every_allowed_scheme_to_a_public_host_is_accepted(url: str) -> None:
    check_notify_url(url, POLICY)


def test_the_allowed_schemes_are_exactly_the_documented_ones() -> None:
    assert {"mailto", "mailtos", "slack", "msteams", "json", "jsons", "form", "forms", "xml", "xmls"} == (
        ALLOWED_NOTIFY_SCHEMES
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "https://hooks.example.com/x",
        "workflows://hooks.example.com/x",
        "discord://id/token",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "ftp://hooks.example.com/",
        "hooks.example.com/x",
    ],
)
def test_other_notify_schemes_are_refused(url: str) -> None:
    message = refused(check_notify_url, url)
    assert "scheme" in message or "not a URL" in message


@pytest.mark.parametrize("url", ["https://hooks.example.com/in", "http://hooks.example.com:8080/in?x=1"])
def test_plain_http_webhooks_to_public_hosts_are_accepted(url: str) -> None:
    check_webhook_url(url, POLICY)


@pytest.mark.parametrize(
    "url", ["json://hooks.example.com/in", "ftp://hooks.example.com/", "file:///etc/hosts"]
)
def test_webhooks_are_http_or_https_only(url: str) -> None:
    assert "http or https only" in refused(check_webhook_url, url) or "not a URL" in refused(
        check_webhook_url, url
    )


# --- inward hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "host 169.254.169.254 is link-local"),
        ("10.0.0.5", "host 10.0.0.5 is private"),
        ("172.16.3.4", "host 172.16.3.4 is private"),
        ("192.168.1.1", "host 192.168.1.1 is private"),
        ("127.0.0.1", "host 127.0.0.1 is loopback"),
        ("0.0.0.0", "host 0.0.0.0 is unspecified"),  # noqa: S104 - a URL host, not a bind
        ("224.0.0.1", "host 224.0.0.1 is multicast"),
        ("240.0.0.1", "host 240.0.0.1 is"),
        ("100.64.0.1", "host 100.64.0.1 is not globally routable"),
        ("[::1]", "host ::1 is loopback"),
        ("[::]", "host :: is unspecified"),
        ("[fe80::1]", "host fe80::1 is link-local"),
        ("[fd12:3456::1]", "host fd12:3456::1 is private"),
        ("[::ffff:127.0.0.1]", "host ::ffff:127.0.0.1 is loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("[::ffff:a9fe:a9fe]", "is link-local (IPv4 169.254.169.254 inside IPv6)"),
        ("[64:ff9b::10.0.0.5]", "is private (IPv4 10.0.0.5 inside IPv6)"),
        ("[2002:a00:5::1]", "is private (IPv4 10.0.0.5 inside IPv6)"),
    ],
)
@pytest.mark.parametrize("scheme", ["json", "xmls", "mailto", "https"])
def test_inward_ip_addresses_are_refused_with_the_reason(scheme: str, host: str, reason: str) -> None:
    check = check_webhook_url if scheme == "https" else check_notify_url
    assert reason in refused(
        check, f"{scheme}://user:pw@{host}/path" if scheme == "mailto" else f"{scheme}://{host}/path"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("json://localhost:8080/", "host localhost resolves to 127.0.0.1, which is loopback"),
        ("json://metadata.example.com/", "resolves to 169.254.169.254, which is link-local"),
        ("json://rebind.example.com/", "host rebind.example.com resolves to 10.0.0.5, which is private"),
        ("json://v6only.example.com/", "resolves to fd00::5, which is private"),
        ("json://mapped.example.com/", "resolves to ::ffff:10.0.0.5, which is private (IPv4 10.0.0.5"),
        ("mailto://jane:pw@smtp.internal", "resolves to 10.1.2.3, which is private"),
        ("https://rebind.example.com/hook", "resolves to 10.0.0.5, which is private"),
    ],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is_inward(url: str, reason: str) -> None:
    check = check_webhook_url if url.startswith("https") else check_notify_url
    assert reason in refused(check, url)


def test_the_check_at_send_time_sees_what_dns_says_then() -> None:
    answers = {"flip.example.com": ["93.184.216.34"]}
    policy = OutboundPolicy(resolve=lambda host: answers[host])
    check_notify_url("json://flip.example.com/x", policy)  # when saved
    answers["flip.example.com"] = ["127.0.0.1"]  # rebound since
    assert "loopback" in refused(check_notify_url, "json://flip.example.com/x", policy)


@pytest.mark.parametrize(
    ("host", "decoded"),
    [
        ("2852039166", "169.254.169.254, which is link-local"),
        ("0xa9fea9fe", "169.254.169.254, which is link-local"),
        ("0x7f.1", "127.0.0.1, which is loopback"),
        ("0177.0.0.1", "127.0.0.1, which is loopback"),
        ("127.1", "127.0.0.1, which is loopback"),
        ("10.0.5", "10.0.0.5, which is private"),
        ("0", "0.0.0.0, which is unspecified"),
        ("017700000001", "127.0.0.1, which is loopback"),
        ("1.1.257", "1.1.1.1"),  # public, but spelled as no URL parser agrees on
    ],
)
def test_numeric_ip_spellings_are_refused_and_named(host: str, decoded: str) -> None:
    message = refused(check_webhook_url, f"http://{host}/")
    assert message == f"host {host} is a non-canonical spelling of the IP address {decoded}"
    assert decoded in refused(check_notify_url, f"json://{host}/")


def test_a_host_that_does_not_resolve_is_refused_clearly() -> None:
    message = refused(check_notify_url, "json://nowhere.example.net/")
    assert message.startswith("host nowhere.example.net does not resolve")
    empty = OutboundPolicy(resolve=lambda _host: [])
    assert "does not resolve (no addresses)" in refused(check_notify_url, "json://hooks.example.com/", empty)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("json://evil@127.0.0.1/", "host 127.0.0.1 is loopback"),
        ("json://hooks.example.com@127.0.0.1/", "host 127.0.0.1 is loopback"),
        ("json://user:hooks.example.com@10.0.0.5:80/", "host 10.0.0.5 is private"),
        ("json://x@127.0.0.1@hooks.example.com/", "more than one '@'"),
        ("json://hooks.example.com\\@127.0.0.1/", "backslash"),
        ("json://%31%32%37.0.0.1/", "percent-encoded"),
        ("json://[fe80::1%25eth0]/", "percent-encoded or has an IPv6 zone"),
        ("json://hooks.example.com /", "whitespace"),
        ("json://::1/", "without brackets"),
        ("json://hooks.example.com:99999/", "not a port number"),
        ("mailto://?to=jane@example.org", "has no mail domain"),
        ("json://?format=text", "has no host"),
        ("https://bad_name.example.com/", "not a valid host name"),
        ("json://a[b@hooks.example.com/", "malformed host part"),  # urllib cannot read it at all
        ("json://１２７.０.０.１/", "host 127.0.0.1 is loopback"),  # full-width digits, read as ASCII
    ],
)
def test_credential_and_parser_tricks_are_refused(url: str, reason: str) -> None:
    check = check_webhook_url if url.startswith("https") else check_notify_url
    assert reason in refused(check, url)


def test_mailto_checks_the_domain_of_the_address() -> None:
    seen: list[str] = []

    def recording(host: str) -> list[str]:
        seen.append(host)
        return fake_resolve(host)

    check_notify_url("mailto://user:pass@gmail.com", OutboundPolicy(resolve=recording))
    assert seen == ["gmail.com"]


def test_slack_and_teams_go_to_fixed_hosts_without_resolving() -> None:
    def no_dns(host: str) -> list[str]:
        raise AssertionError(f"resolved {host}")

    policy = OutboundPolicy(resolve=no_dns)
    check_notify_url("slack://T1/B1/C1/#alerts", policy)
    check_notify_url("msteams://contoso/a/b/c", policy)
    # The team becomes {team}.webhook.office.com: it must not be able to name another domain.
    for team in ("evil.com", "127.0.0.1", "x@y"):
        assert "single DNS label" in refused(check_notify_url, f"msteams://{team}/a/b/c", policy)


# --- Apprise options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", sorted(REFUSED_OPTIONS))
@pytest.mark.parametrize("scheme", ["mailtos", "slack", "jsons"])
def test_options_that_move_the_connection_or_loosen_limits_are_refused(option: str, scheme: str) -> None:
    host = "T1/B1/C1" if scheme == "slack" else "hooks.example.com/x"
    message = refused(check_notify_url, f"{scheme}://{host}?format=text&{option}=1")
    assert message.startswith(f"option {option}= is refused: it ")


@pytest.mark.parametrize(
    "query",
    [
        "smtp=127.0.0.1",
        "SMTP=127.0.0.1",  # Apprise lower-cases option names
        "%73mtp=127.0.0.1",  # and unquotes them
        "to=x@example.org;smtp=127.0.0.1",  # and splits on ';' as well as '&'
        "cto=0.1",
        "rto=600",
        "verify=no",
        "verify=False",
        "redirect=yes",
        "redirect=1",
        "+Host=metadata.google.internal",
        "template=http://169.254.169.254/latest/meta-data",
    ],
)
def test_refused_option_spellings(query: str) -> None:
    message = refused(check_notify_url, f"mailtos://user:pass@gmail.com?{query}")
    assert "option" in message or "Host header" in message


def test_harmless_options_pass() -> None:
    check_notify_url(
        "mailtos://user:pass@gmail.com?to=a@example.org&cc=b@example.org&from=c@example.org&name=Alerts"
        "&mode=ssl&format=html&port=465&+Idempotency-Key=k1&verify=yes&redirect=no",
        POLICY,
    )


# --- the allow-list and the services' own addresses -----------------------------------------------------


def test_an_operator_allows_a_network_by_cidr() -> None:
    policy = OutboundPolicy(allow_hosts=frozenset({"127.0.0.0/8", "fd00::/8"}), resolve=fake_resolve)
    check_notify_url("json://127.0.0.1:9/p", policy)
    check_notify_url("json://v6only.example.com/", policy)  # fd00::5
    assert "host 10.0.0.5 is private" in refused(check_notify_url, "json://10.0.0.5/", policy)
    # Every address a name resolves to must be allowed or public: localhost also answers ::1.
    assert "resolves to ::1, which is loopback" in refused(check_notify_url, "json://localhost/", policy)
    both = OutboundPolicy(allow_hosts=frozenset({"127.0.0.0/8", "::1"}), resolve=fake_resolve)
    check_notify_url("json://localhost:9/p", both)


def test_an_operator_allows_a_host_by_name() -> None:
    policy = OutboundPolicy(allow_hosts=frozenset({"smtp.internal", "LocalHost"}), resolve=fake_resolve)
    check_notify_url("mailto://jane:pw@smtp.internal", policy)
    check_notify_url("json://localhost:8080/", policy)
    check_notify_url("json://SMTP.Internal./", policy)
    assert "private" in refused(check_notify_url, "json://10.1.2.3/", policy)  # the name, not its address


def test_the_services_own_addresses_are_refused_unless_allow_listed() -> None:
    own = frozenset({"203.0.113.0/28", "alerts.example.com"})
    policy = OutboundPolicy(own_addresses=own, resolve=fake_resolve)
    assert "one of the services' own addresses" in refused(check_webhook_url, "https://203.0.113.5/", policy)
    assert "own addresses" in refused(check_webhook_url, "https://alerts.example.com/", policy)
    allowed = OutboundPolicy(own_addresses=own, allow_hosts=frozenset({"203.0.113.10"}), resolve=fake_resolve)
    check_webhook_url("https://203.0.113.10/", allowed)
    check_webhook_url(
        "https://alerts.example.com/",
        OutboundPolicy(
            own_addresses=frozenset({"203.0.113.0/28"}),
            allow_hosts=frozenset({"alerts.example.com"}),
            resolve=fake_resolve,
        ),
    )


def test_the_policy_is_frozen_and_the_send_limits_are_documented_constants() -> None:
    with pytest.raises(ValueError, match="frozen"):
        POLICY.allow_hosts = frozenset({"0.0.0.0/0"})  # type: ignore[misc]
    assert SEND_TIMEOUT_S == 10.0 and MAX_RESPONSE_BYTES == 1_000_000


def test_the_default_resolver_answers_for_localhost_without_the_network() -> None:
    assert "loopback" in refused(check_notify_url, "json://localhost/", OutboundPolicy())


# --- agreement with Apprise's own parser -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("json://user:pass@hooks.example.com:8080/a/b?x=1", "hooks.example.com"),
        ("json://hooks.example.com@93.184.216.34/", "93.184.216.34"),
        ("mailtos://user:pass@gmail.com?to=x@example.org", "gmail.com"),
        ("xml://hooks.example.com/#frag", "hooks.example.com"),
        ("json:\\\\hooks.example.com/x", "hooks.example.com"),
        ("json://hooks.example.com#@127.0.0.1/", "hooks.example.com"),
        ("json://hooks.example.com?@127.0.0.1", "hooks.example.com"),
    ],
)
def test_the_host_checked_is_the_host_apprise_connects_to(url: str, host: str) -> None:
    parse = pytest.importorskip("apprise.utils.parse")
    seen: list[str] = []

    def recording(name: str) -> list[str]:
        seen.append(name)
        return fake_resolve(name) if name in DNS else ["93.184.216.34"]

    check_notify_url(url, OutboundPolicy(resolve=recording))
    assert parse.parse_url(url, verify_host=False)["host"].lower() == host
    assert seen in ([host], [])  # a literal address is not resolved
