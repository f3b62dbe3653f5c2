"""Reading the client out of RFC 7239 Forwarded, trusting only our proxies."""

from __future__ import annotations

import ipaddress

import pytest

from signaling.client_address import TrustedProxies, forwarded_node_address


@pytest.mark.parametrize(
    ("node", "address"),
    [
        ("192.0.2.60", "192.0.2.60"),
        ("192.0.2.60:4711", "192.0.2.60"),
        ("[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"),
        ("[2001:db8:cafe::17]", "2001:db8:cafe::17"),
        ("2001:db8::1", "2001:db8::1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[2001:db8::1", None),
    ],
)
def test_forwarded_nodes(node, address):
    expected = ipaddress.ip_address(address) if address else None
    assert forwarded_node_address(node) == expected


def test_the_right_most_untrusted_hop_is_the_client():
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.1"])
    chain = [{"for": "203.0.113.9"}, {"for": "198.51.100.4"}, {"for": "10.1.2.3"}]
    assert str(proxies.client_from_forwarded(chain)) == "198.51.100.4"
    assert str(proxies.client_from_forwarded([{"for": "10.1.1.1"}, {"for": "192.0.2.1"}])) == (
        "10.1.1.1"
    )
    assert proxies.client_from_forwarded([{"for": "unknown"}]) is None
    assert proxies.client_from_forwarded([]) is None
    assert proxies.trusts(ipaddress.ip_address("10.200.0.1"))
    assert not proxies.trusts(ipaddress.ip_address("192.0.2.2"))
