"""MTU and MAC settings for devices (no root): what each Interface and Bridge row asks
for, the local port taking the bridge's hwaddr, and the commit check refusing bad
values whole, naming the row. Setting them on real devices, and again after a device
is re-created, is in tests/integration/test_device_settings.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ovs_runtime.bridge.desired_state import read_bridges
from ovs_runtime.bridge.device_settings import DeviceSettings, check_device_settings
from ovs_runtime.bridge.reconciler import _wanted_settings
from ovs_runtime.bridge.unsupported_features import check_unsupported_features
from ovs_runtime.db.database import Database
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select


def db_with_bridge(tmp_path: Path) -> Database:
    db = new_db(tmp_path / "db")
    db.commit_checks.append(check_device_settings)
    assert not errors(db.transact(add_bridge_ops("br0", ("vm1", "up1"))))
    assert not errors(
        db.transact(
            [
                {
                    "op": "update",
                    "table": "Interface",
                    "where": [["name", "includes", name]],
                    "row": {"type": "internal" if name != "up1" else ""},
                }
                for name in ("br0", "vm1", "up1")
            ]
        )
    )
    return db


def update(db: Database, table: str, name: str, row: dict[str, object]) -> list[dict[str, Any]]:
    op = {"op": "update", "table": table, "where": [["name", "==", name]], "row": row}
    return errors(db.transact([op]))


def test_settings_are_read_and_the_local_port_takes_the_bridge_hwaddr(tmp_path: Path) -> None:
    db = db_with_bridge(tmp_path)
    assert not update(db, "Interface", "vm1", {"mtu_request": 9000, "mac": "02:AA:00:00:00:01"})
    assert not update(db, "Interface", "up1", {"mtu_request": 1600})
    assert not update(db, "Interface", "br0", {"mtu_request": 9000})
    hwaddr = ["map", [["hwaddr", "02:00:5e:00:00:07"]]]
    assert not update(db, "Bridge", "br0", {"other_config": hwaddr})
    device_mtus = {"up1": 1600}.get
    wanted = _wanted_settings(read_bridges(db.tables), device_mtus)
    assert wanted == {
        "vm1": DeviceSettings(9000, "02:aa:00:00:00:01"),
        "up1": DeviceSettings(1600, None),
        "br0": DeviceSettings(9000, "02:00:5e:00:00:07"),
    }
    # As in OVS: an internal port without mtu_request follows the smallest MTU of the
    # bridge's other device ports, and the local port's address is the bridge's.
    assert not update(db, "Interface", "br0", {"mtu_request": ["set", []]})
    assert _wanted_settings(read_bridges(db.tables), device_mtus)["br0"].mtu == 1600
    (failure,) = update(db, "Interface", "br0", {"mac": "02:00:00:00:00:99"})
    assert "is bridge br0's own port: set its address with Bridge br0" in failure["details"]


@pytest.mark.parametrize(
    ("table", "name", "row", "message"),
    [
        ("Interface", "vm1", {"mac": "02:00:00:00:01"}, "is not a MAC address"),
        ("Interface", "vm1", {"mac": "01:00:5e:00:00:01"}, "multicast or all-zero"),
        ("Interface", "vm1", {"mac": "00:00:00:00:00:00"}, "multicast or all-zero"),
        ("Interface", "up1", {"mac": "02:00:00:00:00:01"}, "only on internal and tap ports"),
        ("Interface", "vm1", {"mtu_request": 67}, "67 is outside 68-65535"),
        ("Interface", "vm1", {"mtu_request": 70000}, "70000 is outside 68-65535"),
        (
            "Interface",
            "vm1",
            {"type": "patch", "mtu_request": 1500, "options": ["map", [["peer", "x"]]]},
            "mtu_request needs a port with a device",
        ),
        ("Bridge", "br0", {"other_config": ["map", [["hwaddr", "nope"]]]}, "hwaddr: 'nope'"),
    ],
)
def test_bad_settings_are_refused_whole_naming_the_row(
    tmp_path: Path, table: str, name: str, row: dict[str, object], message: str
) -> None:
    db = db_with_bridge(tmp_path)
    before = {t: select(db, t) for t in ("Interface", "Bridge")}
    ops = [
        {
            "op": "update",
            "table": "Interface",
            "where": [["name", "==", "br0"]],
            "row": {"mtu_request": 9000},
        },
        {"op": "update", "table": table, "where": [["name", "==", name]], "row": row},
    ]
    (failure,) = errors(db.transact(ops))
    assert failure["error"] == "constraint violation"
    assert message in failure["details"] and f"{table} {name}" in failure["details"]
    assert {t: select(db, t) for t in ("Interface", "Bridge")} == before, "nothing changed"


@pytest.mark.parametrize("column", ["stp_enable", "rstp_enable", "mcast_snooping_enable"])
def test_features_the_switch_lacks_are_refused_not_ignored(tmp_path: Path, column: str) -> None:
    db = db_with_bridge(tmp_path)
    db.commit_checks.append(check_unsupported_features)
    assert not update(db, "Bridge", "br0", {column: False}), "false is fine"
    (failure,) = update(db, "Bridge", "br0", {column: True})
    assert failure["error"] == "constraint violation"
    assert "Bridge br0" in failure["details"] and f"{column}=true" in failure["details"]
    assert select(db, "Bridge")[0][column] is False


def test_a_controller_or_a_marking_queue_is_refused(tmp_path: Path) -> None:
    db = db_with_bridge(tmp_path)
    db.commit_checks.append(check_unsupported_features)
    ops = [
        {
            "op": "insert",
            "table": "Controller",
            "uuid-name": "c",
            "row": {"target": "tcp:192.0.2.1:6653"},
        },
        {
            "op": "update",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "row": {"controller": ["named-uuid", "c"]},
        },
    ]
    (failure,) = errors(db.transact(ops))
    assert "controller: OpenFlow controllers are not supported" in failure["details"]
    queue = [{"op": "insert", "table": "Queue", "row": {"dscp": 46}}]
    (failure,) = errors(db.transact(queue))
    assert "dscp: queues do not re-mark DSCP" in failure["details"]
    assert select(db, "Controller") == [] and select(db, "Queue") == []


def test_rows_from_before_the_checks_do_not_block_other_changes(tmp_path: Path) -> None:
    """A row a previous release stored (a mac on a system port, stp_enable=true) must
    not make every later transaction touching it fail, such as the daemon's own status
    writes or a change to another column; changing the setting itself is checked."""
    db = db_with_bridge(tmp_path)
    stored_before = [
        {
            "op": "update",
            "table": "Interface",
            "where": [["name", "==", "up1"]],
            "row": {"mac": "02:00:00:00:00:01"},
        },
        {
            "op": "update",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "row": {"stp_enable": True},
        },
    ]
    db.commit_checks.remove(check_device_settings)
    assert not errors(db.transact(stored_before))  # as a release without the checks did
    db.commit_checks += [check_device_settings, check_unsupported_features]
    assert not update(db, "Interface", "up1", {"link_state": "up", "mtu": 1500})
    assert not update(db, "Interface", "up1", {"external_ids": ["map", [["k", "v"]]]})
    assert not update(db, "Bridge", "br0", {"external_ids": ["map", [["k", "v"]]]})
    (failure,) = update(db, "Interface", "up1", {"mac": "02:00:00:00:00:02"})
    assert "only on internal and tap ports" in failure["details"]
    assert not update(db, "Bridge", "br0", {"stp_enable": False})


def test_a_new_bridge_named_like_an_interface_with_a_mac_is_refused(tmp_path: Path) -> None:
    """The interface becomes that bridge's own port, whose address is the bridge's."""
    db = db_with_bridge(tmp_path)
    assert not update(db, "Interface", "vm1", {"mac": "02:00:00:00:00:07"})
    port = select(db, "Port", [["name", "==", "vm1"]], ["_uuid"])[0]["_uuid"]
    ops = [
        {
            "op": "insert",
            "table": "Bridge",
            "uuid-name": "b",
            "row": {"name": "vm1", "ports": port},
        },
        {
            "op": "mutate",
            "table": "Open_vSwitch",
            "where": [],
            "mutations": [["bridges", "insert", ["named-uuid", "b"]]],
        },
    ]
    (failure,) = errors(db.transact(ops))
    assert "is bridge vm1's own port" in failure["details"]
