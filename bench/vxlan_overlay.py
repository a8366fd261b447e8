"""Benchmark: a VXLAN overlay between two hypervisors, ovs-runtime beside Open vSwitch.

    python -m bench.vxlan_overlay [--runs 3] [--seconds 5]

Two "hypervisor" namespaces are joined by an underlay veth (203.0.113.1 and .2); each
holds a VM namespace on a veth. The switch in each hypervisor bridges its VM to a VXLAN
port (VNI 5010) toward the other. Measured between the two VMs, as in
``bench.l2_forwarding``: TCP Gbit/s (iperf3, one stream) and delivered 64-byte-frame
UDP packets/s (iperf3 -u -l 18), median of ``--runs``, with ratios.

- ovs-runtime: one ``ovs-runtimed`` per hypervisor namespace, encapsulating in
  userspace over a UDP socket; the underlay address stays on the kernel device.
- Open vSwitch 3.1 netdev: one ovs-vswitchd per hypervisor namespace with userspace
  tunnelling as OVS documents it: the underlay device in a ``br-phy`` bridge that holds
  the tunnel endpoint address, and ``br-int`` with the VM and the VXLAN port. Its VMs
  get transmit checksum offload off (netdev needs it for TCP, measured in
  ``bench.l2_forwarding``); ovs-runtime's keep their defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pyroute2 import NetNS

from bench import l2_forwarding
from bench.l2_forwarding import compare
from bench.ovs_netdev import OvsNetdev
from tests.daemon_process import DaemonProcess
from tests.netns_lab import NetnsLab

UNDERLAY = {"a": "203.0.113.1", "b": "203.0.113.2"}
VM_IP = {"a": "198.51.100.1", "b": "198.51.100.2"}
VNI = 5010
VM_MTU = 1450  # 1500 minus VXLAN's 50 bytes


def iperf(lab: NetnsLab, udp: bool, seconds: int) -> float:
    if not udp and not lab.ping("vma", VM_IP["b"], count=3):
        raise RuntimeError("the VMs cannot reach each other over the overlay")
    return l2_forwarding.iperf(lab, udp, seconds, "vma", "vmb", VM_IP["b"])


def topology(prefix: str) -> NetnsLab:
    """hv a and b on an underlay; vm a on hv a, vm b on hv b (their veths' switch ends
    moved into the hypervisors as ``vm0``)."""
    lab = NetnsLab(prefix)
    hv = {side: lab.add_namespace(f"hv{side}") for side in "ab"}
    lab.wire(hv["a"], "und0", hv["b"], "und0")
    for side in "ab":
        vm = lab.add_host(f"vm{side}", VM_IP[side])
        lab.move_link(vm.switch_port, "/proc/self/ns/net", hv[side])
        with NetNS(hv[side]) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname=vm.switch_port)[0], ifname="vm0")
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
        with NetNS(vm.ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=VM_MTU)
    return lab


def other(side: str) -> str:
    return "b" if side == "a" else "a"


@contextmanager
def ovs_runtime(prefix: str, work: Path) -> Iterator[NetnsLab]:
    lab = topology(prefix)
    daemons = []
    try:
        for side in "ab":
            ns = lab.hosts[f"hv{side}"].ns
            with NetNS(ns) as nsr:
                index = nsr.link_lookup(ifname="und0")[0]
                nsr.addr("add", index=index, address=UNDERLAY[side], prefixlen=24)
            daemon = DaemonProcess(work / f"ovsr-{side}", extra_args=(), netns=ns).start()
            daemons.append(daemon)
            proc = daemon.ovsr(
                *("add-br", "br-int", "--", "add-port", "br-int", "vm0"),
                *("--", "add-port", "br-int", "vx0", "--", "set", "Interface", "vx0"),
                "type=vxlan",
                f"options:remote_ip={UNDERLAY[other(side)]}",
                f"options:key={VNI}",
            )
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
        time.sleep(1.5)
        yield lab
    finally:
        for daemon in daemons:
            daemon.stop()
        lab.cleanup()


@contextmanager
def open_vswitch(prefix: str, work: Path) -> Iterator[NetnsLab]:
    lab = topology(prefix)
    with ExitStack() as stack:
        stack.callback(lab.cleanup)
        for side in "ab":
            lab.run(f"vm{side}", "ethtool", "-K", "eth0", "tx", "off", check=True)
            ns = lab.hosts[f"hv{side}"].ns
            ovs = OvsNetdev(work / f"ovs-{side}", netns=ns)
            stack.callback(ovs.stop)
            ovs.start()
            with NetNS(ns) as nsr:
                mac = nsr.get_links(nsr.link_lookup(ifname="und0")[0])[0].get_attr("IFLA_ADDRESS")
            ovs.vsctl(
                *("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev"),
                f"other_config:hwaddr={mac}",
                *("--", "add-port", "br-phy", "und0"),
            )
            ovs.vsctl(
                *("add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev"),
                *("--", "add-port", "br-int", "vm0"),
                *("--", "add-port", "br-int", "vx0", "--", "set", "Interface", "vx0"),
                "type=vxlan",
                f"options:remote_ip={UNDERLAY[other(side)]}",
                f"options:key={VNI}",
            )
            time.sleep(1)
            with NetNS(ns) as nsr:  # the tunnel endpoint address lives on br-phy
                index = nsr.link_lookup(ifname="br-phy")[0]
                nsr.link("set", index=index, state="up")
                nsr.addr("add", index=index, address=UNDERLAY[side], prefixlen=24)
            ovs.bridges += ["br-phy", "br-int"]
        time.sleep(2)
        yield lab


SWITCHES: dict[str, Callable[[str, Path], object]] = {
    "Open vSwitch 3.1 netdev": open_vswitch,
    "ovs-runtime": ovs_runtime,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    title = ", VM to VM over VXLAN"
    compare(SWITCHES, args.runs, args.seconds, "bx", title, measure=iperf, receiver="vmb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
