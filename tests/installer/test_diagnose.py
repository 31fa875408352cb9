"""The parts of ``srht-install status``'s diagnostics that need no site:
the thresholds of ``--min-free``, ``--dns-server``'s address, and the
resolver asking a DNS server given to it (a real one, on loopback). The
checks themselves run on the installer suite's test hosts
(``test_install.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from srht_installer.diagnose import Diagnosis, FreeSpace, lookup, split_server

sys.path.insert(0, str(Path(__file__).parent))
from diagnosesite import DnsServer  # noqa: E402 - after the path is set

pytestmark = pytest.mark.installer


def test_min_free_takes_a_share_or_a_size() -> None:
    assert FreeSpace.parse("10%") == FreeSpace(percent=10)
    assert FreeSpace.parse("2GiB") == FreeSpace(size=2 << 30)
    assert FreeSpace.parse("512M") == FreeSpace(size=512 << 20)
    assert FreeSpace.parse("10%").short_of(9, 100)
    assert not FreeSpace.parse("10%").short_of(10, 100)
    assert FreeSpace.parse("100%").short_of(99, 100)
    assert str(FreeSpace.parse("2G")) == "2.0 GiB"
    for wrong, reason in (("110%", "between 0% and 100%"), ("lots", "like 2GiB")):
        with pytest.raises(ValueError, match=reason):
            FreeSpace.parse(wrong)


def test_dns_server_is_an_address_and_a_port() -> None:
    assert split_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_server("192.0.2.1") == ("192.0.2.1", 53)
    assert split_server("[::1]:53") == ("::1", 53)
    for wrong in ("ns.example.org", "127.0.0.1:99999"):
        with pytest.raises(ValueError):
            split_server(wrong)


def test_the_resolver_asks_the_dns_server_given() -> None:
    with DnsServer({"paste.example.org": ["192.0.2.7"]}) as server:
        resolver = Diagnosis(dns_server=server.address, timeout=5).resolver()
        assert lookup(resolver, "paste.example.org") == ["192.0.2.7"]
        server.answers["paste.example.org"] = ["198.51.100.1"]
        assert lookup(resolver, "paste.example.org") == ["198.51.100.1"]
        assert lookup(resolver, "meta.example.org") == []  # NXDOMAIN
