"""``ovsr`` against a real daemon: chaining, waiting, timeouts, JSON output, ``apply``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.daemon_process import DaemonProcess, run_ovsr

DESIRED = """
bridges:
  br0:
    fail_mode: standalone
    other_config: {mac-aging-time: 300}
    ports:
      vm1: {tag: "10"}
      vm2: {tag: 10}
      uplink: {trunks: [20, 10], vlan_mode: trunk}
      patch-a: {type: patch, options: {peer: patch-b}}
  br1:
    ports:
      patch-b: {type: patch, options: {peer: patch-a}}
"""


def test_chain_is_atomic_and_waits_for_cur_cfg(daemon: DaemonProcess) -> None:
    ok = daemon.ovsr(
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "tag=10",
        "--",
        "set",
        "Port",
        "p1",
        "vlan_mode=access",
    )
    assert ok.returncode == 0, ok.stderr
    root = json.loads(daemon.ovsr("--format", "json", "list", "Open_vSwitch").stdout)[0]
    assert root["cur_cfg"] == root["next_cfg"] >= 1  # the daemon acknowledged the change
    bad = daemon.ovsr("add-port", "br0", "p2", "--", "set", "Port", "p2", "tag=99999")
    assert bad.returncode == 1
    assert "out of range" in bad.stderr and "Traceback" not in bad.stderr
    assert daemon.ovsr("list-ports", "br0").stdout.split() == ["p1"]


def test_may_exist_if_exists_and_errors(daemon: DaemonProcess) -> None:
    assert daemon.ovsr("add-br", "br0").returncode == 0
    dup = daemon.ovsr("add-br", "br0")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert daemon.ovsr("--may-exist", "add-br", "br0").returncode == 0
    assert daemon.ovsr("--if-exists", "del-port", "nope").returncode == 0
    missing = daemon.ovsr("del-port", "nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "ovsr: no port named nope"
    assert daemon.ovsr("br-exists", "br0").returncode == 0
    assert daemon.ovsr("br-exists", "zz").returncode == 2
    for argv, needle in (
        (["set", "Port", "br0", "colour=red"], 'no column "colour"'),
        (["get", "Brdge", "br0", "name"], 'unknown table "Brdge"'),
        (["set", "Port", "br0", "tag"], "COLUMN[:KEY]=VALUE"),
    ):
        proc = daemon.ovsr(*argv)
        assert proc.returncode == 1 and needle in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_show_text_and_json(daemon: DaemonProcess) -> None:
    daemon.ovsr(
        "add-br",
        "br0",
        "--",
        "add-port",
        "br0",
        "p1",
        "tag=10",
        "--",
        "add-port",
        "br0",
        "pa",
        "type=patch",
        "options:peer=pb",
    )
    text = daemon.ovsr("show").stdout
    for line in (
        "    Bridge br0",
        "        Port p1",
        "            tag: 10",
        "                type: patch",
        "                options: {peer=pb}",
    ):
        assert line in text.splitlines()
    data = json.loads(daemon.ovsr("--format", "json", "show").stdout)
    assert data["bridges"][0]["name"] == "br0"
    assert {p["name"] for p in data["bridges"][0]["ports"]} == {"br0", "p1", "pa"}


def test_create_with_id_and_find(daemon: DaemonProcess) -> None:
    daemon.ovsr("add-br", "br0")
    created = daemon.ovsr("create", "Manager", "target=ptcp:6640")
    assert created.returncode == 0
    uuid = created.stdout.strip()
    assert len(uuid) == 36
    found = json.loads(
        daemon.ovsr("--format", "json", "find", "Manager", "target=ptcp:6640").stdout
    )
    # Not referenced from the root, so the Manager row was garbage-collected.
    assert found == [] or found[0]["_uuid"] == uuid


def test_apply_is_idempotent_with_check_and_json(daemon: DaemonProcess, tmp_path: Path) -> None:
    desired = tmp_path / "desired.yaml"
    desired.write_text(DESIRED)
    check = daemon.ovsr("apply", "--check", str(desired))
    assert check.returncode == 2 and "+ bridge br0" in check.stdout
    assert daemon.ovsr("list-br").stdout.strip() == ""  # --check changed nothing
    first = daemon.ovsr("--format", "json", "apply", str(desired))
    assert first.returncode == 2, first.stderr
    report = json.loads(first.stdout)
    assert report["changed"] and report["before"] == {}
    assert report["after"]["br0"]["ports"]["vm1"]["tag"] == [10]
    second = daemon.ovsr("apply", str(desired))
    assert second.returncode == 0 and second.stdout.strip() == "no change", second.stdout
    assert daemon.ovsr("get", "Port", "uplink", "trunks").stdout.strip() == "[10, 20]"
    assert daemon.ovsr("get", "Interface", "patch-a", "options:peer").stdout.strip() == "patch-b"


def test_apply_states(daemon: DaemonProcess, tmp_path: Path) -> None:
    desired = tmp_path / "d.yaml"
    desired.write_text(DESIRED)
    assert daemon.ovsr("apply", str(desired)).returncode == 2
    daemon.ovsr("add-port", "br0", "manual", "--", "add-br", "brx")
    merged = tmp_path / "m.yaml"
    merged.write_text("bridges:\n  br0:\n    ports:\n      vm1: {tag: 11}\n")
    assert daemon.ovsr("apply", str(merged)).returncode == 2
    assert "manual" in daemon.ovsr("list-ports", "br0").stdout.split()  # merged touches no more
    assert daemon.ovsr("apply", "--state=replaced", str(merged)).returncode == 2
    assert daemon.ovsr("list-ports", "br0").stdout.split() == ["vm1"]
    assert "brx" in daemon.ovsr("list-br").stdout.split()  # replaced: other bridges kept
    assert daemon.ovsr("apply", "--state=overridden", str(merged)).returncode == 2
    assert daemon.ovsr("list-br").stdout.split() == ["br0"]
    assert daemon.ovsr("apply", "--state=overridden", str(merged)).returncode == 0
    deleted = tmp_path / "x.yaml"
    deleted.write_text("bridges:\n  br0: {}\n")
    assert daemon.ovsr("apply", "--state=deleted", str(deleted)).returncode == 2
    assert daemon.ovsr("list-br").stdout.strip() == ""


def test_apply_bad_file_changes_nothing(daemon: DaemonProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for content, needle in (
        ("bridges: [", "not valid YAML"),
        ("bridges:\n  br0:\n    ports:\n      p: {tag: 9000}\n", "out of range"),
        ("bridges:\n  br0:\n    ports:\n      p: {colour: 1}\n", "unknown setting"),
    ):
        bad.write_text(content)
        proc = daemon.ovsr("apply", str(bad))
        assert proc.returncode == 1 and needle in proc.stderr, proc.stderr
        assert str(bad) in proc.stderr
    assert daemon.ovsr("list-br").stdout.strip() == ""


def test_daemon_down_gives_clear_error(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = run_ovsr("--db", f"unix:{tmp_path}/nothing.sock", "show")
    assert proc.returncode == 1
    assert "is ovs-runtimed running" in proc.stderr
    assert time.monotonic() - start < 10


def test_wedged_daemon_times_out(daemon: DaemonProcess) -> None:
    daemon.signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        proc = daemon.ovsr("--timeout", "2", "add-br", "brw")
        elapsed = time.monotonic() - start
    finally:
        daemon.signal(signal.SIGCONT)
    assert proc.returncode == 1
    assert "timed out after 2 s" in proc.stderr
    assert elapsed < 8


def test_confirm_timeout_rolls_back_unless_confirmed(daemon: DaemonProcess, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("bridges:\n  br0:\n    ports:\n      vm1: {tag: 10}\n")
    assert daemon.ovsr("apply", str(base)).returncode == 2
    risky = tmp_path / "risky.yaml"
    risky.write_text(
        "bridges:\n  br0:\n    ports:\n      vm1: {tag: 20}\n      uplink: {trunks: [10, 20]}\n"
    )
    # Not confirmed: the daemon restores the previous configuration by itself.
    proc = daemon.ovsr("--format", "json", "apply", "--confirm-timeout=1", str(risky))
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["confirm_token"]
    assert daemon.ovsr("get", "Port", "vm1", "tag").stdout.strip() == "20"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon.ovsr("get", "Port", "vm1", "tag").stdout.strip() == "10":
            break
        time.sleep(0.2)
    assert daemon.ovsr("get", "Port", "vm1", "tag").stdout.strip() == "10"
    assert daemon.ovsr("list-ports", "br0").stdout.split() == ["vm1"]
    assert "was not confirmed in time: rolled back" in daemon.log()
    # Confirmed over a fresh connection: the change stays.
    proc = daemon.ovsr("--format", "json", "apply", "--confirm-timeout=2", str(risky))
    token = json.loads(proc.stdout)["confirm_token"]
    assert daemon.ovsr("confirm", token).returncode == 0
    time.sleep(3)
    assert daemon.ovsr("get", "Port", "vm1", "tag").stdout.strip() == "20"
    assert daemon.ovsr("list-ports", "br0").stdout.split() == ["uplink", "vm1"]
    again = daemon.ovsr("confirm", token)
    assert again.returncode == 1 and "no change pending confirmation" in again.stderr
    bad = daemon.ovsr("apply", "--confirm-timeout=soon", str(risky))
    assert bad.returncode == 1 and "expected seconds" in bad.stderr


def test_rollback_restores_qos_queues_mirrors_and_ipfix(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """A rate limit or a mirror is just the change that can cut a host off: the rollback
    restores QoS, its queues and mirrors too, and removes the ones the change added; an
    IPFIX row deleted inside the window comes back with the bridge that refers to it."""
    base = tmp_path / "base.yaml"
    base.write_text(
        "bridges:\n  br0:\n    ports:\n"
        "      vm1: {tag: 10, qos: {type: linux-htb, other_config: {max-rate: 1000000}}}\n"
        "      vm2: {tag: 10}\n"
        "    mirrors:\n      m0: {select_all: true, output_port: vm2}\n"
    )
    assert daemon.ovsr("apply", str(base)).returncode == 2
    ipfix = ("--", "--id=@i", "create", "IPFIX", 'targets="203.0.113.9:4739"', "sampling=64")
    made = daemon.ovsr(*ipfix, "--", "set", "Bridge", "br0", "ipfix=@i")
    assert made.returncode == 0, made.stderr
    before = daemon.ovsr("--format", "json", "list", "QoS").stdout
    ipfix_before = daemon.ovsr("--format", "json", "list", "IPFIX").stdout
    risky = tmp_path / "risky.yaml"
    risky.write_text(
        "bridges:\n  br0:\n    ports:\n"
        "      vm1: {tag: 10, qos: {type: linux-htb, other_config: {max-rate: 2000},\n"
        "            queues: {1: {other_config: {max-rate: 1000}}}}}\n"
        "      vm2: {tag: 10, qos: {type: linux-htb, other_config: {max-rate: 5000}}}\n"
    )
    proc = daemon.ovsr("apply", "--state=replaced", "--confirm-timeout=1", str(risky))
    assert proc.returncode == 2, proc.stderr
    assert daemon.ovsr("get", "Bridge", "br0", "mirrors").stdout.strip() == "[]"
    assert daemon.ovsr("clear", "Bridge", "br0", "ipfix").returncode == 0
    assert no_rows(daemon, "IPFIX")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "was not confirmed in time" not in daemon.log():
        time.sleep(0.2)
    assert "was not confirmed in time: rolled back" in daemon.log()
    assert daemon.ovsr("--format", "json", "list", "QoS").stdout == before
    assert no_rows(daemon, "Queue")
    assert daemon.ovsr("--bare", "--columns=name", "list", "Mirror").stdout.split() == ["m0"]
    assert daemon.ovsr("get", "Port", "vm2", "qos").stdout.strip() == "[]"
    assert daemon.ovsr("--format", "json", "list", "IPFIX").stdout == ipfix_before
    assert daemon.ovsr("get", "Bridge", "br0", "ipfix").stdout.strip() != "[]"


def no_rows(daemon: DaemonProcess, *tables: str) -> bool:
    """Whether each of these tables is empty (QoS and Queue are root tables: nothing
    garbage-collects their rows)."""
    return all(
        daemon.ovsr("--bare", "--columns=_uuid", "list", table).stdout == "" for table in tables
    )


def apply_doc(daemon: DaemonProcess, tmp_path: Path, doc: str, *options: str) -> Any:
    path = tmp_path / "desired.yaml"
    path.write_text(doc)
    return daemon.ovsr("--format", "json", "apply", *options, str(path))


def test_apply_deleted_touches_only_what_it_names_where_it_is(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    base = "bridges:\n  br0:\n    ports: {vm1: {}}\n  br1:\n    ports: {dup1: {}}\n"
    assert apply_doc(daemon, tmp_path, base).returncode == 2
    # dup1 is br1's: "delete br0's dup1" deletes nothing.
    gone = apply_doc(
        daemon, tmp_path, "bridges:\n  br0:\n    ports: {dup1: {}}\n", "--state=deleted"
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert daemon.ovsr("list-ports", "br1").stdout.split() == ["dup1"]
    # An empty port list deletes no port, and not the bridge either.
    empty = apply_doc(daemon, tmp_path, "bridges:\n  br0:\n    ports: {}\n", "--state=deleted")
    assert empty.returncode == 0 and daemon.ovsr("list-br").stdout.split() == ["br0", "br1"]
    whole = apply_doc(daemon, tmp_path, "bridges:\n  br0: {}\n", "--state=deleted")
    assert whole.returncode == 2 and daemon.ovsr("list-br").stdout.split() == ["br1"]


def test_apply_refuses_ambiguous_ports_and_bad_names_changing_nothing(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    assert apply_doc(daemon, tmp_path, "bridges:\n  br0: {}\n  br1: {}\n").returncode == 2
    before = daemon.ovsr("--format", "json", "show").stdout
    cases = [
        ("bridges:\n  br0:\n    ports: {br1: {}}\n", "br1 is bridge br1's own port"),
        (
            "bridges:\n  br0:\n    ports: {d1: {tag: 5}}\n  br1:\n    ports: {d1: {tag: 6}}\n",
            "port d1 is listed under bridges br0 and br1",
        ),
        ("bridges:\n  br0:\n    ports: {br1: {}}\n  br1: {}\n", "br1 is a bridge"),
        ("bridges:\n  br0:\n    ports: {averyveryverylongportname: {}}\n", "has 25 characters"),
        ("bridges:\n  br0:\n    ports: {'a/b c': {}}\n", "not a valid name"),
        ("bridges:\n  '':\n    ports: {}\n", "not a valid name"),
        ("bridges:\n  br0:\n    ports: {p1: {type: vxlna}}\n", "'vxlna' is not an interface type"),
        ("bridges:\n  br0:\n    ports: {p1: {mac: notamac}}\n", "is not a MAC address"),
        ("bridges:\n  br0:\n    ports: {br0: {type: tap}}\n", "own port is of type internal"),
    ]
    for doc, message in cases:
        proc = apply_doc(daemon, tmp_path, doc)
        assert proc.returncode == 1 and message in proc.stderr, (doc, proc.stderr)
    assert daemon.ovsr("--format", "json", "show").stdout == before
    # A tunnel's name is no device's: it may be longer.
    long_tunnel = (
        "bridges:\n  br0:\n    ports:\n"
        "      vxlan-to-compute-0042: {type: vxlan, options: {remote_ip: 203.0.113.9}}\n"
    )
    assert apply_doc(daemon, tmp_path, long_tunnel).returncode == 2


def test_apply_merges_maps_moves_visibly_and_keeps_the_local_port_internal(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    assert apply_doc(daemon, tmp_path, "bridges:\n  br0:\n    ports: {vm1: {}}\n").returncode == 2
    assert daemon.ovsr("set", "Port", "vm1", "external_ids:iface-id=abc").returncode == 0
    merged = apply_doc(
        daemon, tmp_path, "bridges:\n  br0:\n    ports: {vm1: {external_ids: {owner: ops}}}\n"
    )
    assert merged.returncode == 2, merged.stderr
    assert (
        daemon.ovsr("get", "Port", "vm1", "external_ids").stdout.strip()
        == "{iface-id=abc, owner=ops}"
    )
    replaced = apply_doc(
        daemon,
        tmp_path,
        "bridges:\n  br0:\n    ports: {vm1: {external_ids: {owner: ops}}}\n",
        "--state=replaced",
    )
    assert replaced.returncode == 2
    assert daemon.ovsr("get", "Port", "vm1", "external_ids").stdout.strip() == "{owner=ops}"
    # The bridge's own port: an MTU for it is shown and kept, and it stays internal.
    local = (
        "bridges:\n  br0:\n    ports:\n"
        "      vm1: {external_ids: {owner: ops}}\n      br0: {mtu_request: 9000}\n"
    )
    first = apply_doc(daemon, tmp_path, local, "--state=replaced")
    assert first.returncode == 2 and "br0/br0 interface mtu_request" in first.stdout, first.stdout
    assert daemon.ovsr("get", "Interface", "br0", "type", "mtu_request").stdout.split() == [
        "internal",
        "9000",
    ]
    assert apply_doc(daemon, tmp_path, local, "--state=replaced").returncode == 0
    # A port moved to another bridge shows as gone from the old one too.
    moved = apply_doc(daemon, tmp_path, "bridges:\n  br1:\n    ports: {vm1: {}}\n")
    report = json.loads(moved.stdout)
    assert "- port br0/vm1" in report["diff"] and "+ port br1/vm1" in report["diff"], report["diff"]


def test_apply_removes_the_qos_of_a_port_it_deletes(daemon: DaemonProcess, tmp_path: Path) -> None:
    doc = (
        "bridges:\n  br0:\n    ports:\n"
        "      vm1: {qos: {type: linux-htb, other_config: {max-rate: 1000000},"
        " queues: {1: {other_config: {max-rate: 500000}}}}}\n      vm2: {}\n"
    )
    assert apply_doc(daemon, tmp_path, doc).returncode == 2
    assert daemon.ovsr("--bare", "--columns=type", "list", "QoS").stdout.split() == ["linux-htb"]
    only_vm2 = apply_doc(
        daemon, tmp_path, "bridges:\n  br0:\n    ports: {vm2: {}}\n", "--state=replaced"
    )
    assert only_vm2.returncode == 2
    assert no_rows(daemon, "QoS", "Queue")


def test_check_mode_runs_the_daemons_own_checks(daemon: DaemonProcess, tmp_path: Path) -> None:
    """--check must not promise a change the real run refuses: the daemon runs the
    transaction to its commit checks (here: a tunnel without remote_ip) and commits
    nothing."""
    doc = "bridges:\n  br0:\n    ports:\n      vx2: {type: vxlan}\n"
    checked = apply_doc(daemon, tmp_path, doc, "--check")
    real = apply_doc(daemon, tmp_path, doc)
    for proc in (checked, real):
        assert proc.returncode == 1, proc.stdout
        assert "constraint violation" in proc.stderr and "remote_ip is required" in proc.stderr
    assert daemon.ovsr("list-br").stdout.split() == []
    fine = apply_doc(daemon, tmp_path, "bridges:\n  br0:\n    ports: {vm1: {tag: 10}}\n", "--check")
    assert fine.returncode == 2 and daemon.ovsr("list-br").stdout.split() == []


def test_apply_deleting_a_bridge_takes_its_ports_qos(daemon: DaemonProcess, tmp_path: Path) -> None:
    doc = (
        "bridges:\n  br0:\n    ports:\n"
        "      vm1: {qos: {type: linux-htb, other_config: {max-rate: 1000000}}}\n"
        "  br1: {}\n"
    )
    assert apply_doc(daemon, tmp_path, doc).returncode == 2
    gone = apply_doc(daemon, tmp_path, "bridges:\n  br1: {}\n", "--state=overridden")
    assert gone.returncode == 2 and daemon.ovsr("list-br").stdout.split() == ["br1"]
    assert no_rows(daemon, "QoS")
    unknown = apply_doc(daemon, tmp_path, "bridges:\n  br1:\n    ports: {p: {qso: {}}}\n")
    assert unknown.returncode == 1 and "accepted:" in unknown.stderr
    assert "qos, interface" in unknown.stderr, unknown.stderr


def test_commands_that_skip_the_flow_rules_keep_them(daemon: DaemonProcess) -> None:
    """Commands that do not look at flow rules do not download them (with 100,000 rules
    `list-br` took 4.4 s): they must still keep them, and those that show them must."""
    from ovs_runtime.cli.main import _needs_flow_rules, parse_argv
    from ovs_runtime.db.schema import load_schema

    schema = load_schema()
    for argv, needed in (
        (["list-br"], False),
        (["add-port", "br0", "p1"], False),
        (["set", "bridge", "br0", "other_config:x=y"], False),
        (["--columns=name", "list", "Bridge"], False),
        (["list", "Bridge"], True),
        (["get", "Bridge", "br0", "flow_rules"], True),
        (["list", "flow_rule"], True),
        (["port-export", "p1"], True),
    ):
        assert _needs_flow_rules(schema, parse_argv(argv)[1]) == needed, argv
    assert daemon.ovsr("add-br", "br0").returncode == 0
    for n in range(3):
        assert daemon.ovsr("add-flow", "br0", f"priority={n + 1},ip,actions=drop").returncode == 0
    for argv in (
        ["set", "Bridge", "br0", "other_config:x=y", "--", "add-port", "br0", "p1"],
        ["set-fail-mode", "br0", "secure"],
        ["del-port", "p1"],
    ):
        assert daemon.ovsr(*argv).returncode == 0, argv
        rules = json.loads(daemon.ovsr("--format", "json", "dump-flows", "br0").stdout)
        assert len([r for r in rules if not r["implicit"]]) == 3, argv
    listed = json.loads(daemon.ovsr("--format", "json", "list", "Bridge", "br0").stdout)
    assert len(listed[0]["flow_rules"]) == 3
