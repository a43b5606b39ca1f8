"""The fetcher's SSRF guard without a network: the address policy, the URL rules, resolution and pinning.

Nothing here opens a socket: the resolver is a stub and the backend's inner connector records what it was asked."""

from __future__ import annotations

import socket

import httpcore
import pytest
import redis.asyncio as aredis

from services.fetcher import guard
from services.fetcher.guard import Policy, Refused, address_problem, check_url
from services.fetcher.http import FetchConfig, PoliteFetcher
from services.fetcher.sources import Source, load_sources
from shared.errors import PermanentError, TransientError
from shared.settings import Settings

PUBLIC = "93.184.216.34"  # only ever handed to a stub connector, never connected to


# -- addresses -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, problem", [
    ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "non-global"), ("fec0::1", "site-local"),
    # IPv6 spellings of IPv4 addresses: mapped, 6to4, NAT64
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),
])
def test_forbidden_addresses(address, problem):
    assert problem in (address_problem(address) or "")


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_pass(address):
    assert address_problem(address) is None


# -- URLs without DNS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1/", "refused: 127.0.0.1 is a loopback address"),
    ("http://localhost:80/x", "refused: localhost is a loopback name"),
    ("http://LocalHost./", "loopback name"),
    ("http://api.localhost/", "loopback name"),
    ("http://[::1]/", "refused: ::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "loopback address"),
    ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a cloud metadata address"),
    ("http://0.0.0.0/", "unspecified address"),
    ("file:///etc/passwd", "scheme 'file' is not allowed, only http(s)"),
    ("gopher://example.org:70/_SET%20x", "scheme 'gopher' is not allowed"),
    ("ftp://example.org/x", "only http(s)"),
    ("http://user:secret@example.org/", "user info"),
    ("http://user@example.org/", "user info"),
    ("http://example.org:8080/", "port 8080 of example.org is not an allowed port (80, 443"),
    ("https://example.org:22/", "port 22"),
])
def test_refused_urls(url, reason):
    with pytest.raises(Refused, match="^refused: ") as exc:
        check_url(url, Policy())
    assert reason in str(exc.value)
    assert isinstance(exc.value, PermanentError), "a refusal is dead-lettered, not retried"
    assert "secret" not in str(exc.value), "the password is not repeated in the reason"


def test_allowed_urls_give_the_host_and_port_httpx_connects_to():
    assert check_url("https://Example.ORG/a?b=c", Policy()) == ("example.org", 443)
    assert check_url("http://example.org:80/", Policy()) == ("example.org", 80)
    assert check_url("http://bücher.example/", Policy()) == ("xn--bcher-kva.example", 80)
    assert check_url("http://[2606:4700:4700::1111]/", Policy()) == ("2606:4700:4700::1111", 80)


def test_allow_private_lifts_only_the_address_rule():
    lifted = Policy.make(allow_private=True)
    assert check_url("http://127.0.0.1/", lifted) == ("127.0.0.1", 80)
    assert check_url("http://localhost/", lifted) == ("localhost", 80)
    for url in ("file:///etc/passwd", "http://u:p@127.0.0.1/", "http://127.0.0.1:6379/"):
        with pytest.raises(Refused):
            check_url(url, lifted)
    assert check_url("http://127.0.0.1:6379/", Policy.make(allow_private=True, allowed_ports=None)) == ("127.0.0.1", 6379)


def test_allowed_hosts_lift_the_address_rule_for_those_hosts_only():
    policy = Policy().widen(allowed_hosts=["127.0.0.1", "Intranet.Example."], allowed_ports=[8080])
    assert check_url("http://127.0.0.1:8080/", policy) == ("127.0.0.1", 8080)
    assert check_url("http://intranet.example/", policy) == ("intranet.example", 80)
    with pytest.raises(Refused, match="127.0.0.2 is a loopback address"):
        check_url("http://127.0.0.2:8080/", policy)
    with pytest.raises(Refused, match="port 8081"):
        check_url("http://127.0.0.1:8081/", policy)
    assert Policy.make(allowed_hosts=["[::1]"]).private_ok("0:0::1")
    assert Policy().widen(allowed_ports=[1]).allowed_ports == {80, 443, 1}
    assert Policy.make(allowed_ports=None).widen(allowed_ports=[1]).allowed_ports is None


# -- resolution ------------------------------------------------------------------------------------------------

def stub_resolver(monkeypatch, *answers: list[str]) -> list[str]:
    """guard.resolve answers each call with the next list (the last one repeats); returns the hosts asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(answers[min(len(asked), len(answers)) - 1])

    monkeypatch.setattr(guard, "resolve", resolve)
    return asked


async def test_a_public_looking_name_that_resolves_to_loopback_is_refused(monkeypatch):
    stub_resolver(monkeypatch, ["127.0.0.1"])
    with pytest.raises(Refused, match="refused: news.example resolves to 127.0.0.1, a loopback address"):
        await guard.vetted("news.example", 80, Policy())
    assert await guard.vetted("news.example", 80, Policy.make(allow_private=True)) == ["127.0.0.1"]
    assert await guard.vetted("news.example", 80, Policy.make(allowed_hosts=["news.example"])) == ["127.0.0.1"]


async def test_one_forbidden_address_among_public_ones_refuses_the_name(monkeypatch):
    stub_resolver(monkeypatch, [PUBLIC, "10.1.2.3"])
    with pytest.raises(Refused, match="10.1.2.3, a private address"):
        await guard.vetted("mixed.example", 443, Policy())


async def test_ip_literals_are_not_resolved(monkeypatch):
    asked = stub_resolver(monkeypatch, ["127.0.0.1"])
    assert await guard.vetted(PUBLIC, 80, Policy()) == [PUBLIC]
    assert asked == []


async def test_check_pins_the_vetted_addresses_and_a_name_that_does_not_resolve_is_transient(monkeypatch):
    stub_resolver(monkeypatch, [PUBLIC])
    with guard.scope(Policy()) as scope:
        await guard.check("http://news.example/a", scope)
        assert scope.pins == {("news.example", 80): [PUBLIC]}

    async def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(guard, "resolve", nxdomain)
    with guard.scope(Policy()) as scope, pytest.raises(TransientError, match="cannot resolve nowhere.example"):
        await guard.check("http://nowhere.example/", scope)


async def test_the_real_resolver_refuses_localhost_spellings():
    for host in ("127.1", "2130706433"):  # inet_aton spellings of 127.0.0.1: caught after resolution
        with pytest.raises(Refused, match="resolves to 127.0.0.1, a loopback address"):
            await guard.vetted(host, 80, Policy())


# -- pinning: the backend connects only to vetted addresses --------------------------------------------------

class Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the TCP connect: records the address it was asked for and fails, so nothing is contacted."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append((host, port))
        raise httpcore.ConnectError(f"stub: not connecting to {host}")

    async def sleep(self, seconds: float) -> None:
        pass


async def test_dns_rebinding_between_check_and_connect_does_not_reach_the_second_address(monkeypatch):
    asked = stub_resolver(monkeypatch, [PUBLIC], ["127.0.0.1"])
    backend = guard.PinnedBackend(Policy(), inner=Recorder())
    with guard.scope(Policy()) as scope:
        await guard.check("http://rebind.example/", scope)  # first answer: public, vetted and pinned
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("rebind.example", 80, timeout=1)
    assert backend.inner.asked == [(PUBLIC, 80)], "the connection went to the vetted address"
    assert asked == ["rebind.example"], "no second lookup that could have answered 127.0.0.1"


async def test_an_unpinned_connect_resolves_and_vets_itself(monkeypatch):
    stub_resolver(monkeypatch, ["10.0.0.7"])
    backend = guard.PinnedBackend(Policy(), inner=Recorder())
    with pytest.raises(Refused, match="other.example resolves to 10.0.0.7, a private address"):
        await backend.connect_tcp("other.example", 80)
    with pytest.raises(Refused, match="port 25"):
        await backend.connect_tcp(PUBLIC, 25)
    with guard.scope(Policy.make(allow_private=True)):  # the fetch's policy, not the backend's default
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("other.example", 80)
    assert backend.inner.asked == [("10.0.0.7", 80)]


async def test_a_pinned_address_is_checked_again_under_the_policy_of_the_connecting_fetch():
    backend = guard.PinnedBackend(Policy(), inner=Recorder())
    with guard.scope(Policy()) as scope:
        scope.pins[("sneaky.example", 80)] = ["127.0.0.1"]
        with pytest.raises(Refused, match="loopback"):
            await backend.connect_tcp("sneaky.example", 80)
    assert backend.inner.asked == []


# -- configuration -----------------------------------------------------------------------------------------------

def test_settings(monkeypatch):
    for name in ("NEWSFLOW_FETCH_ALLOW_PRIVATE", "NEWSFLOW_FETCH_ALLOWED_PORTS", "NEWSFLOW_SOURCES_FILE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.fetch_allow_private is False and s.fetch_allowed_ports == [80, 443]
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOWED_PORTS", "80, 443,8080")
    s = Settings()
    assert s.fetch_allow_private is True and s.fetch_allowed_ports == [80, 443, 8080]
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOWED_PORTS", "[8443]")
    assert Settings().fetch_allowed_ports == [8443]
    for bad in ("", "0", "70000", "http"):
        monkeypatch.setenv("NEWSFLOW_FETCH_ALLOWED_PORTS", bad)
        with pytest.raises(ValueError):
            Settings()


def test_sources_file_carries_per_source_exceptions(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text('[[sources]]\nname = "intranet"\nurl = "http://news.corp.internal:8080/rss.xml"\n'
                    'allowed_hosts = ["news.corp.internal"]\nallowed_ports = [8080]\n\n'
                    '[[sources]]\nname = "lab"\nkind = "url"\nurl = "http://10.0.0.9/"\nallow_private = true\n\n'
                    '[[sources]]\nname = "public"\nurl = "https://example.org/rss"\n')
    intranet, lab, public = load_sources(path)
    assert intranet.allowed_hosts == ("news.corp.internal",) and intranet.allowed_ports == (8080,) and not intranet.allow_private
    assert lab.allow_private and lab.allowed_hosts == ()
    assert (public.allow_private, public.allowed_hosts, public.allowed_ports) == (False, (), ())
    for row, message in (('allow_private = "yes"', "allow_private"), ('allowed_hosts = "a"', "allowed_hosts"),
                         ("allowed_ports = [0]", "allowed_ports"), ('allowed_ports = ["80"]', "allowed_ports")):
        path.write_text(f'[[sources]]\nname = "x"\nurl = "http://example.org/"\n{row}\n')
        with pytest.raises(ValueError, match=message):
            load_sources(path)


async def test_fetcher_picks_the_policy_by_source_name_or_the_sources_own_url(tmp_path, monkeypatch):
    path = tmp_path / "sources.toml"
    path.write_text('[[sources]]\nname = "intranet"\nurl = "http://news.corp.internal:8080/rss.xml"\n'
                    'allowed_hosts = ["news.corp.internal"]\nallowed_ports = [8080]\n')
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(path))
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOWED_PORTS", "80,443")
    monkeypatch.delenv("NEWSFLOW_FETCH_ALLOW_PRIVATE", raising=False)
    config = FetchConfig.from_settings(Settings())
    assert config.allow_private is False and config.allowed_ports == (80, 443) and [s.name for s in config.sources] == ["intranet"]
    fetcher = PoliteFetcher(aredis.Redis(), "p", config)
    try:
        base = fetcher.policy
        assert base == Policy() and fetcher.policy_for("http://x.example/") == base
        intranet = fetcher.policy_for("http://anything.example/", "intranet")
        assert intranet.allowed_hosts == {"news.corp.internal"} and intranet.allowed_ports == {80, 443, 8080}
        assert fetcher.policy_for("http://news.corp.internal:8080/rss.xml") == intranet, "the scheduler's poll of the source"
        assert fetcher.policy_for("http://news.corp.internal:8080/other") == base
        assert fetcher.policy_for("http://x.example/", "unknown-source") == base
    finally:
        await fetcher.aclose()
    explicit = FetchConfig.from_settings(Settings(), sources=[Source("s", "url", "http://example.org/", allow_private=True)])
    assert [s.name for s in explicit.sources] == ["s"]
