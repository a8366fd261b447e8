"""Single-host demo: a real ovs-runtimed switching three namespace "VMs" on two VLANs.

Run by `make demo-host`. Every namespace, link and process it makes is removed at the end,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon_process import DaemonProcess  # noqa: E402
from tests.netns_lab import NetnsLab  # noqa: E402

NET = "198.51.100."
DESIRED = """\
bridges:
  br-demo:
    other_config: {{mac-aging-time: 300}}
    ports:
      {vm1}: {{tag: 10}}
      {vm2}: {{tag: 10}}
      {vm3}: {{tag: 20}}
"""


def stage(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def show(proc_result: object) -> None:
    out = getattr(proc_result, "stdout", "") + getattr(proc_result, "stderr", "")
    print(out.rstrip())


def main() -> int:
    started = time.monotonic()
    lab = NetnsLab("demo")
    with tempfile.TemporaryDirectory(prefix="ovs-runtime-demo-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "d", extra_args=())
        try:
            stage("1. start ovs-runtimed with temporary state and run directories")
            daemon.start()
            print(f"daemon pid {daemon.proc.pid if daemon.proc else '?'}, socket {daemon.socket}")

            stage("2. three namespace VMs: vm1 and vm2 on VLAN 10, vm3 on VLAN 20")
            ports = {}
            for n in (1, 2, 3):
                host = lab.add_host(f"vm{n}", f"{NET}{n}")
                ports[f"vm{n}"] = host.switch_port
                print(
                    f"vm{n}: namespace {host.ns}, eth0 {NET}{n}/24, switch port {host.switch_port}"
                )
            desired = Path(tmp) / "desired.yaml"
            desired.write_text(DESIRED.format(**ports))
            print(desired.read_text())
            show(daemon.ovsr("apply", "--check", str(desired)))
            result = daemon.ovsr("apply", str(desired))
            if result.returncode not in (0, 2):
                show(result)
                return 1
            time.sleep(0.5)
            print("second apply of the same file:")
            show(daemon.ovsr("apply", str(desired)))

            stage("3. same VLAN reaches, different VLAN does not")
            checks = [("vm1", 2, True), ("vm2", 1, True), ("vm1", 3, False), ("vm3", 2, False)]
            ok = True
            for src, dst, expected in checks:
                reached = lab.ping(src, f"{NET}{dst}", count=2, timeout=1)
                verdict = "ok" if reached == expected else "UNEXPECTED"
                ok = ok and reached == expected
                print(
                    f"{src} -> vm{dst} ({NET}{dst}): {'reachable' if reached else 'unreachable'}"
                    f"  [{verdict}]"
                )

            stage("4. ovsr show")
            show(daemon.ovsr("show"))
            stage("ovsr fdb-show br-demo")
            show(daemon.ovsr("fdb-show", "br-demo"))
            stage("ovsr dpif-show")
            show(daemon.ovsr("dpif-show"))
            stage(f"done in {time.monotonic() - started:.1f} s; cleaning up")
            return 0 if ok else 1
        finally:
            daemon.stop()
            lab.cleanup()


if __name__ == "__main__":
    sys.exit(main())
