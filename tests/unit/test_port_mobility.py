"""Port documents and RARP announcements, without root or a daemon."""

from __future__ import annotations

import pytest

from ovs_runtime.cli.port_mobility import PortDocumentError, validate_document
from ovs_runtime.packet.announce import parse_mac, rarp_announcement
from ovs_runtime.packet.ethernet import parse_l2

GOOD = {
    "format": "ovs-runtime/port",
    "version": 1,
    "port": {"name": "vm1", "tag": 10},
    "interfaces": [{"name": "vm1", "type": "tap"}],
    "learned_macs": [{"mac": "02:00:00:00:00:01", "vlan": 10}],
}


def test_a_good_document_passes() -> None:
    validate_document(GOOD, "doc")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "not a port document"),
        ({"version": 3}, "version 3 is not supported"),
        ({"port": {"tag": 1}}, "'port' must be an object with a 'name'"),
        ({"interfaces": []}, "exactly one interface"),
        ({"port": {"name": "vm1", "statistics": {}}}, "statistics cannot be imported"),
        ({"learned_macs": [{"mac": "zz:00:00:00:00:01", "vlan": 1}]}, "learned_macs"),
        ({"learned_macs": [{"mac": "02:00:00:00:00:01", "vlan": 5000}]}, "learned_macs"),
    ],
)
def test_bad_documents_name_the_problem(change: dict[str, object], message: str) -> None:
    with pytest.raises(PortDocumentError, match=message):
        validate_document({**GOOD, **change}, "doc")


def test_rarp_announcement_is_a_padded_broadcast_from_the_mac() -> None:
    mac = parse_mac("02:00:00:00:00:01")
    frame = rarp_announcement(mac)
    hdr = parse_l2(frame)
    assert len(frame) == 60 and frame[:6] == b"\xff" * 6 and frame[6:12] == mac
    assert hdr.ethertype == 0x8035 and hdr.vlan is None
    tagged = parse_l2(rarp_announcement(mac, 10))
    assert tagged.vlan == 10 and tagged.ethertype == 0x8035
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac("02:00")
