"""Device names out of rtnetlink link messages (no root): the parser the datapath
thread runs on every notification, on crafted RTM_NEWLINK/RTM_DELLINK datagrams, several
per datagram, other message types, and truncated or malformed ones. The real socket is
in tests/integration/test_bonding.py."""

from __future__ import annotations

import struct

from ovs_runtime.datapath.link_events import link_names

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR = 16, 17, 20
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4


def attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def message(kind: int, *attrs: bytes, index: int = 7) -> bytes:
    body = struct.pack("=BBHiII", 0, 0, 1, index, 0x1043, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_names_of_new_and_deleted_links() -> None:
    new = message(RTM_NEWLINK, attr(IFLA_ADDRESS, b"\x02" * 6), attr(IFLA_IFNAME, b"eth1\0"))
    gone = message(
        RTM_DELLINK, attr(IFLA_MTU, struct.pack("=I", 1500)), attr(IFLA_IFNAME, b"vm7\0")
    )
    assert link_names(new) == {"eth1"}
    assert link_names(new + gone) == {"eth1", "vm7"}


def test_other_messages_and_links_without_a_name_are_skipped() -> None:
    address = message(RTM_NEWADDR, attr(IFLA_IFNAME, b"not-a-link\0"))
    nameless = message(RTM_NEWLINK, attr(IFLA_MTU, struct.pack("=I", 9000)))
    assert link_names(address + nameless + message(RTM_NEWLINK, attr(IFLA_IFNAME, b"swp1\0"))) == {
        "swp1"
    }


def test_malformed_datagrams_end_the_walk_without_an_error() -> None:
    good = message(RTM_NEWLINK, attr(IFLA_IFNAME, b"eth2\0"))
    assert link_names(b"") == set()
    assert link_names(good[:10]) == set()  # shorter than a header
    assert link_names(good + good[:-3]) == {"eth2"}  # the second message is cut
    lying = struct.pack("=IHHII", 4, RTM_NEWLINK, 0, 0, 0) + good  # length below a header
    assert link_names(lying) == set()
    bad_attr = message(RTM_NEWLINK, struct.pack("=HH", 200, IFLA_IFNAME) + b"eth3\0\0\0\0")
    assert link_names(bad_attr) == set()  # an attribute longer than its message
    assert link_names(message(RTM_NEWLINK, attr(IFLA_IFNAME, b"\xffx\0"))) == {"\ufffdx"}
