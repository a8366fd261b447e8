"""The real Open vSwitch tools work against our daemon: ``ovs-vsctl`` (Debian's
openvswitch-switch) for the everyday commands, and the ``ovs`` Python IDL monitoring
changes made by ``ovsr``. Results are read back with ``ovsr``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.daemon_process import DaemonProcess

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vsctl") is None,
    reason="ovs-vsctl missing: run `make deps` (openvswitch-switch)",
)


def vsctl(daemon: DaemonProcess, *args: str, wait: bool = True) -> str:
    cmd = ["ovs-vsctl", f"--db={daemon.db}", "--timeout=20"]
    if not wait:
        cmd.append("--no-wait")
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"ovs-vsctl {' '.join(args)}: {proc.stderr}"
    assert "Error detected" not in proc.stderr, proc.stderr
    return proc.stdout


def ovsr_json(daemon: DaemonProcess, *args: str) -> Any:
    proc = daemon.ovsr("--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("wait", [True, False], ids=["wait", "no-wait"])
def test_ovs_vsctl_everyday_commands(daemon: DaemonProcess, wait: bool) -> None:
    vsctl(daemon, "init", wait=wait)
    vsctl(daemon, "add-br", "br0", wait=wait)
    vsctl(daemon, "add-br", "br1", wait=wait)
    assert vsctl(daemon, "list-br", wait=wait).split() == ["br0", "br1"]
    vsctl(daemon, "add-port", "br0", "p1", wait=wait)
    vsctl(daemon, "--may-exist", "add-port", "br0", "p1", wait=wait)
    vsctl(
        daemon,
        "add-port",
        "br0",
        "p2",
        "--",
        "set",
        "Interface",
        "p2",
        "type=internal",
        "--",
        "set",
        "Port",
        "p2",
        "tag=20",
        wait=wait,
    )
    assert vsctl(daemon, "list-ports", "br0", wait=wait).split() == ["p1", "p2"]
    vsctl(daemon, "set", "Port", "p1", "tag=10", "trunks=[10,20]", "other_config:k=v", wait=wait)
    vsctl(daemon, "set-fail-mode", "br0", "secure", wait=wait)
    assert vsctl(daemon, "get", "Port", "p1", "tag", wait=wait).strip() == "10"
    assert vsctl(daemon, "get", "Bridge", "br0", "fail_mode", wait=wait).strip() == "secure"
    vsctl(daemon, "add", "Port", "p1", "trunks", "30", wait=wait)
    vsctl(daemon, "remove", "Port", "p1", "trunks", "10", wait=wait)
    vsctl(daemon, "clear", "Port", "p1", "other_config", wait=wait)
    found = vsctl(daemon, "--columns=name", "find", "Port", "tag=20", wait=wait)
    assert '"p2"' in found or "p2" in found
    listed = vsctl(daemon, "list", "Interface", "p2", wait=wait)
    assert "internal" in listed
    show = vsctl(daemon, "show", wait=wait)
    assert "Bridge br0" in show and "Port p2" in show and "tag: 20" in show
    vsctl(daemon, "del-port", "br0", "p2", wait=wait)
    vsctl(daemon, "del-br", "br1", wait=wait)

    # Read everything back with ovsr.
    assert ovsr_json(daemon, "list-br") == ["br0"]
    assert ovsr_json(daemon, "list-ports", "br0") == ["p1"]
    (port,) = ovsr_json(daemon, "list", "Port", "p1")
    assert port["tag"] == [10] and port["trunks"] == [20, 30] and port["other_config"] == {}
    assert ovsr_json(daemon, "get", "Bridge", "br0", "fail_mode") == ["secure"]
    interfaces = {row["name"] for row in ovsr_json(daemon, "list", "Interface")}
    assert interfaces == {"br0", "p1"}  # p2 and br1's interfaces were collected


def test_ovs_vsctl_chain_is_one_transaction(daemon: DaemonProcess) -> None:
    vsctl(daemon, "add-br", "br0")
    proc = subprocess.run(
        [
            "ovs-vsctl",
            f"--db={daemon.db}",
            "--timeout=20",
            "add-port",
            "br0",
            "c1",
            "--",
            "set",
            "Port",
            "c1",
            "tag=5000",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert ovsr_json(daemon, "list-ports", "br0") == []  # the add-port was rolled back
    vsctl(
        daemon,
        "add-port",
        "br0",
        "c1",
        "--",
        "set",
        "Port",
        "c1",
        "tag=5",
        "--",
        "add-port",
        "br0",
        "c2",
        "--",
        "set",
        "Port",
        "c2",
        "tag=6",
    )
    assert ovsr_json(daemon, "list-ports", "br0") == ["c1", "c2"]


def test_ovs_python_idl_sees_ovsr_changes(daemon: DaemonProcess) -> None:
    from importlib import resources

    import ovs.db.idl
    import ovs.poller

    from ovs_runtime.db.schema import SCHEMA_RESOURCE

    schema_file = str(resources.files("ovs_runtime.db").joinpath(SCHEMA_RESOURCE))
    helper = ovs.db.idl.SchemaHelper(location=schema_file)
    helper.register_all()
    idl = ovs.db.idl.Idl(daemon.db, helper)

    def run_until(predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idl.run()
            if predicate():
                return
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()
        raise AssertionError("the IDL did not see the change in time")

    try:
        run_until(lambda: idl.has_ever_connected() and len(idl.tables["Open_vSwitch"].rows) == 1)
        assert daemon.ovsr("add-br", "br9", "--", "add-port", "br9", "v1", "tag=42").returncode == 0
        run_until(lambda: any(p.name == "v1" for p in idl.tables["Port"].rows.values()))
        port = next(p for p in idl.tables["Port"].rows.values() if p.name == "v1")
        assert port.tag == [42]
        bridge = next(b for b in idl.tables["Bridge"].rows.values() if b.name == "br9")
        assert {p.name for p in bridge.ports} == {"br9", "v1"}
        assert daemon.ovsr("set", "Port", "v1", "tag=43").returncode == 0
        run_until(lambda: port.tag == [43])
        assert daemon.ovsr("del-port", "v1").returncode == 0
        run_until(lambda: not any(p.name == "v1" for p in idl.tables["Port"].rows.values()))
    finally:
        idl.close()


def ovsr_ok(daemon: DaemonProcess, *args: str) -> str:
    proc = daemon.ovsr(*args)
    assert proc.returncode == 0, f"ovsr {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_find_answers_as_ovs_vsctl_does(daemon: DaemonProcess) -> None:
    """The real ovs-vsctl is the oracle: the same conditions on the same rows select the
    same records, including an operator inside a quoted value, a missing map key, set
    comparisons and the order of an empty optional column."""
    ovsr_ok(
        daemon,
        *("add-br", "br0", "--", "add-port", "br0", "p1", "tag=5", "trunks=1,2"),
        *("--", "add-port", "br0", "p2", "--", "add-port", "br0", "p3", "tag=12"),
        *("--", "set", "Port", "p2", 'external_ids:k="a!=b"', "external_ids:m=1"),
    )
    conditions = [
        'external_ids:k="x!=y"',
        'external_ids:k="a!=b"',
        "external_ids:nokey!=x",
        "external_ids:nokey{=}[]",
        "external_ids:m{>=}[1]",
        "external_ids{>=}{m=1}",
        "external_ids={}",
        'external_ids<{k="a!=b", m=2}',
        "external_ids>{a=z}",
        "external_ids>={m=0}",
        "tag<10",
        "tag>=5",
        "tag=5",
        "tag!=5",
        "tag{=}[]",
        "trunks{>}[1]",
        "trunks{<=}[1,2,3]",
        "trunks>[7]",
        "name=p1",
        "name>p1",
    ]
    for condition in conditions:
        theirs = vsctl(daemon, "--bare", "--columns=name", "find", "Port", condition, wait=False)
        ours = ovsr_json(daemon, "--columns=name", "find", "Port", condition)
        assert sorted(r["name"] for r in ours) == sorted(theirs.split()), condition


def test_values_recipes_and_refusals_as_ovs_vsctl(daemon: DaemonProcess) -> None:
    # The value of COLUMN:KEY= is all of the rest (the OVN settings are written so).
    ovsr_ok(
        daemon,
        *("set", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings=physnet1:br-ex,p2:br-v"),
        *("external_ids:ovn-encap-type=geneve,vxlan", 'external_ids:"a=b"=c d'),
    )
    theirs = vsctl(daemon, "get", "Open_vSwitch", ".", "external_ids", wait=False)
    assert 'ovn-bridge-mappings="physnet1:br-ex,p2:br-v"' in theirs
    assert 'ovn-encap-type="geneve,vxlan"' in theirs and '"a=b"="c d"' in theirs
    # ovs-vsctl(8)'s mirror recipe: --id=@p get names an existing row; --id=@m create
    # prints the new row's UUID.
    ovsr_ok(daemon, "add-br", "br0", "--", "add-port", "br0", "p1", "--", "add-port", "br0", "p2")
    out = ovsr_ok(
        daemon,
        *("--", "--id=@p", "get", "Port", "p2"),
        *("--", "--id=@m", "create", "Mirror", "name=m0", "select_all=true", "output_port=@p"),
        *("--", "add", "Bridge", "br0", "mirrors", "@m"),
    )
    mirror = vsctl(daemon, "get", "Bridge", "br0", "mirrors", wait=False).strip()
    assert mirror == f"[{out.strip()}]"
    assert ovsr_ok(daemon, "get", "Mirror", "m0", "_uuid").strip() == out.strip()
    port = vsctl(daemon, "get", "Port", "p2", "_uuid", wait=False).strip()
    assert ovsr_ok(daemon, "get", "Mirror", "m0", "output_port").strip() == port
    # Rows ovs-vsctl names by the row that refers to them: QoS by port name.
    qos = ovsr_ok(
        daemon,
        "--",
        "--id=@q",
        "create",
        "QoS",
        "type=linux-htb",
        "--",
        "set",
        "Port",
        "p1",
        "qos=@q",
    ).strip()
    assert ovsr_ok(daemon, "get", "QoS", "p1", "_uuid").strip() == qos
    # Refusals that leave everything as it was.
    before = vsctl(daemon, "show", wait=False)
    local = daemon.ovsr("del-port", "br0", "br0")
    assert local.returncode == 1 and "it is the local port for bridge br0" in local.stderr
    guard = daemon.ovsr("br-exists", "nope", "--", "add-br", "brx")
    assert guard.returncode == 2 and guard.stdout == ""  # the guard ends the chain
    assert vsctl(daemon, "show", wait=False) == before


def test_values_print_as_ovs_vsctl_prints_them(daemon: DaemonProcess) -> None:
    strings = {
        "mac": "fa:16:3e:00:00:01",
        "name": "br0",
        "path": "x/y",
        "accent": "h\u00e9llo",
        "dotted": "a.b-c_d",
        "digit": "9abc",
        "under": "_x",
        "word": "true",
        "uuid": "01234567-89ab-cdef-0123-456789abcdef",
        "space": "a b",
    }
    ovsr_ok(
        daemon,
        "add-br",
        "br0",
        "--",
        "set",
        "Bridge",
        "br0",
        *(f"external_ids:{k}={v}" for k, v in strings.items()),
    )
    for args in (
        ("get", "Bridge", "br0", "external_ids"),
        ("get", "Bridge", "br0", "name", "external_ids:mac", "external_ids:accent"),
        ("--columns=name,external_ids,fail_mode", "list", "Bridge", "br0"),
        ("--bare", "--columns=name,external_ids,fail_mode,_uuid", "list", "Bridge", "br0"),
        ("--bare", "--columns=name,ports", "find", "Bridge", "name=br0"),
        ("--if-exists", "get", "Bridge", "br0", "external_ids:nokey", "external_ids:word"),
    ):
        assert ovsr_ok(daemon, *args) == vsctl(daemon, *args, wait=False), args


def test_table_styles_print_as_ovs_vsctl_prints_them(daemon: DaemonProcess) -> None:
    """--format table/list/csv/html, --data string/bare/json, --no-headings, --bare and
    --oneline, byte for byte against the real ovs-vsctl. Each table holds one row (the
    order of several rows is the IDL's hash order in ovs-vsctl, by name in ovsr)."""
    ovsr_ok(
        daemon,
        *("add-br", "br0", "--", "add-port", "br0", "p1", "tag=5", "trunks=7,8"),
        *("--", "set", "Port", "p1", 'external_ids:k="a,b"', 'external_ids:q=x"y<&>'),
        *("external_ids:path=c:\\d",),
    )
    one_row = ("--columns=_uuid,name,tag,trunks,external_ids,interfaces", "find", "Port", "name=p1")
    bridge = ("--columns=name,ports,fail_mode", "list", "Bridge", "br0")
    checked = 0
    for style in (
        (),
        ("--format=table",),
        ("--format=csv",),
        ("--format=html",),
        ("--format=list",),
        ("--data=bare",),
        ("--data=json",),
        ("--no-headings",),
        ("--bare",),
        ("--no-headings", "--format=table", "--data=json"),
        ("--format=csv", "--data=bare", "--no-headings"),
        ("--bare", "--format=table"),
    ):
        for command in (one_row, bridge, (*one_row, "--", *bridge)):
            args = (*style, *command)
            assert ovsr_ok(daemon, *args) == vsctl(daemon, *args, wait=False), args
            checked += 1
    # --oneline: every command but a table on one line, backslashes doubled.
    args = (
        *("--oneline", "list-br", "--", "get", "Port", "p1", "external_ids"),
        *("--", "--columns=name", "list", "Bridge", "br0", "--", "list-ports", "br0"),
        *("--", "br-exists", "br0"),  # no output: a blank line
        *("--", "br-to-vlan", "br0", "--", "br-to-parent", "br0", "--", "comment", "a", "b"),
    )
    ours = ovsr_ok(daemon, *args)
    assert ours == vsctl(daemon, *args, wait=False)
    assert ours.splitlines()[1] == r'{k="a,b", path="c:\\\\d", q="x\\"y<&>"}'
    assert ours.splitlines()[-4:] == ["", "0", "br0", ""]
    # Several rows, one value not ASCII (widths count UTF-8 bytes), and an empty table:
    # the same lines, in ovsr's order (by name) rather than ovs-vsctl's hash order.
    ovsr_ok(daemon, "set", "Port", "br0", "external_ids:who=h\u00e9")
    for args in (
        ("--format=table", "--data=bare", "--columns=name,tag,external_ids", "list", "Port"),
        ("--format=csv", "--columns=name,external_ids", "list", "Port"),
        ("--format=table", "--columns=name", "find", "Port", "tag=99"),
        ("--format=csv", "--columns=name", "find", "Port", "tag=99"),
        ("--format=html", "--columns=name", "find", "Port", "tag=99"),
    ):
        ours_lines, theirs_lines = (
            out.splitlines() for out in (ovsr_ok(daemon, *args), vsctl(daemon, *args, wait=False))
        )
        head = 2 if "--format=table" in args else 1
        assert ours_lines[:head] == theirs_lines[:head], args
        assert sorted(ours_lines[head:]) == sorted(theirs_lines[head:]), args
    # --oneline also holds for the flow and inspection commands.
    ovsr_ok(daemon, "add-flow", "br0", "priority=5,udp,actions=drop")
    ovsr_ok(daemon, "add-flow", "br0", "priority=6,tcp,actions=drop")
    lines = ovsr_ok(daemon, "dump-flows", "br0").splitlines()
    assert len(lines) >= 2
    assert ovsr_ok(daemon, "--oneline", "dump-flows", "br0") == "\\n".join(lines) + "\n"
    assert checked == 36


def test_wait_until_returns_when_the_record_and_condition_appear(daemon: DaemonProcess) -> None:
    from tests.daemon_process import python_env

    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ovs_runtime.cli.main",
            "--db",
            daemon.db,
            "--timeout",
            "20",
            "wait-until",
            "port",
            "p1",
            "tag=10",
            "--",
            "get",
            "Port",
            "p1",
            "tag",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        time.sleep(0.5)
        ovsr_ok(daemon, "add-br", "br0", "--", "add-port", "br0", "p1")
        time.sleep(0.5)
        assert waiter.poll() is None, "no tag yet: still waiting"
        started = time.monotonic()
        ovsr_ok(daemon, "set", "Port", "p1", "tag=10")
        out, err = waiter.communicate(timeout=10)
        assert waiter.returncode == 0, err
        assert out.strip() == "10" and time.monotonic() - started < 2
    finally:
        waiter.kill()
        waiter.wait()
    late = daemon.ovsr("--timeout", "1", "wait-until", "Bridge", "nope")
    assert late.returncode == 1 and "timed out after 1 s in wait-until Bridge nope" in late.stderr


def test_emer_reset_clears_what_ovs_vsctl_clears(daemon: DaemonProcess) -> None:
    ovsr_ok(
        daemon,
        *("add-br", "br0", "--", "add-port", "br0", "p1", "tag=10"),
        *("--", "set-fail-mode", "br0", "secure"),
        *("--", "set", "Bridge", "br0", "other_config:hwaddr=02:00:00:00:00:09"),
        *("other_config:mac-aging-time=60", "flood_vlans=10"),
        *("--", "set", "Port", "p1", "other_config:k=v"),
        *("--", "set", "Interface", "p1", "ingress_policing_rate=1000"),
        *("--", "set", "Open_vSwitch", ".", "other_config:x=y"),
        *("--", "--id=@p", "get", "Port", "p1"),
        *("--", "--id=@m", "create", "Mirror", "name=m0", "select_all=true", "output_port=@p"),
        *("--", "add", "Bridge", "br0", "mirrors", "@m"),
    )
    ovsr_ok(daemon, "emer-reset")
    bridge = ovsr_json(daemon, "list", "Bridge", "br0")[0]
    assert bridge["fail_mode"] == [] and bridge["mirrors"] == [] and bridge["flood_vlans"] == []
    assert bridge["other_config"] == {"hwaddr": "02:00:00:00:00:09"}
    assert vsctl(daemon, "get", "Port", "p1", "other_config", "tag", wait=False) == "{}\n10\n"
    # As OVS's: the Open_vSwitch row and interfaces keep their other_config; policing goes.
    assert vsctl(daemon, "get", "Open_vSwitch", ".", "other_config", wait=False) == "{x=y}\n"
    policing = vsctl(daemon, "get", "Interface", "p1", "ingress_policing_rate", wait=False)
    assert policing == "0\n"
    assert vsctl(daemon, "--bare", "--columns=name", "list", "Mirror", wait=False) == ""


@pytest.mark.parametrize("tool", ["ovs-vsctl", "ovsr"])
def test_ipfix_as_ovs_documents_it_and_emer_reset_clears_it(
    daemon: DaemonProcess, tool: str
) -> None:
    """The IPFIX recipe of OVS's documentation, typed into the real ovs-vsctl; then the
    real ovs-vsctl's emer-reset (which needs the IPFIX table) or ours removes it."""
    vsctl(daemon, "add-br", "br0")
    vsctl(
        daemon,
        *("--", "set", "Bridge", "br0", "ipfix=@i"),
        *("--", "--id=@i", "create", "IPFIX", 'targets="203.0.113.9:4739"'),
        *("obs_domain_id=123", "obs_point_id=456", "cache_active_timeout=60"),
        *("cache_max_flows=13", "sampling=64"),
    )
    (row,) = ovsr_json(daemon, "list", "IPFIX")
    assert (row["targets"], row["sampling"], row["obs_domain_id"]) == (
        ["203.0.113.9:4739"],
        [64],
        [123],
    )
    assert vsctl(daemon, "get", "IPFIX", "br0", "cache_max_flows", wait=False) == "13\n"
    bad = daemon.ovsr("set", "IPFIX", "br0", "other_config:enable-input-sampling=maybe")
    assert bad.returncode == 1 and "is not true or false" in bad.stderr, bad.stderr
    if tool == "ovs-vsctl":
        vsctl(daemon, "emer-reset")
    else:
        ovsr_ok(daemon, "emer-reset")
    assert ovsr_json(daemon, "list", "Bridge", "br0")[0]["ipfix"] == []
    assert ovsr_json(daemon, "list", "IPFIX") == []


def test_dry_run_checks_everything_and_commits_nothing(daemon: DaemonProcess) -> None:
    dry = daemon.ovsr("--dry-run", "add-br", "br0", "--", "add-port", "br0", "p1")
    assert dry.returncode == 0, dry.stderr
    assert vsctl(daemon, "list-br", wait=False) == ""
    ovsr_ok(daemon, "add-br", "br0")
    refused = daemon.ovsr(
        "--dry-run", "add-port", "br0", "vx1", "--", "set", "Interface", "vx1", "type=vxlan"
    )
    assert refused.returncode == 1 and "options:remote_ip is required" in refused.stderr
    flows = daemon.ovsr("--dry-run", "add-flow", "br0", "actions=drop")
    assert flows.returncode == 1 and "replace-flows --check" in flows.stderr
    assert vsctl(daemon, "list-ports", "br0", wait=False) == ""


def test_find_with_a_malformed_quoted_key_is_an_error_not_a_traceback(
    daemon: DaemonProcess,
) -> None:
    ovsr_ok(daemon, "add-br", "br0")
    for condition in ('external_ids:"a=1', 'external_ids:"\\q"=1'):
        proc = daemon.ovsr("find", "Bridge", condition)
        assert proc.returncode == 1 and "is not a valid quoted key" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
