"""The lab tooling itself: a running lab is reused, a different one is refused, and
``down`` leaves no trace (no nspawn host, namespace, veth or daemon), twice in a row.
Runs after test_fleet.py, whose lab it takes down."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyroute2 import IPRoute

from lab import fleet as lab_fleet


def traces() -> list[str]:
    found = [f"nspawn pid {pid}" for pid in lab_fleet._stray_machines()]
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [f"netns {p.name}" for p in netns.iterdir() if p.name.startswith("lab-")]
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            if name.startswith("ve-lab-") or (name.startswith("lab") and len(name) <= 8):
                found.append(f"link {name}")
    if lab_fleet.state_path().exists():
        found.append(f"state file {lab_fleet.state_path()}")
    return found


def test_up_reuses_refuses_and_down_leaves_no_trace() -> None:
    lab_fleet.down(log=False)
    assert traces() == []
    try:
        first = lab_fleet.up(hypervisors=1, log=False)
        assert [h.name for h in first] == ["sw1", "hv1"]
        again = lab_fleet.up(hypervisors=1, log=False)
        assert [h.pid for h in again] == [h.pid for h in first], "a running lab is reused"
        with pytest.raises(lab_fleet.LabError, match="a lab with 1 hypervisor"):
            lab_fleet.up(hypervisors=2, log=False)
        assert all(lab_fleet.alive(h.pid) for h in first), "the refusal changed nothing"
    finally:
        lab_fleet.down(log=False)
    assert traces() == []
    lab_fleet.down(log=False)  # safe to run twice
    assert traces() == []


def test_a_bad_host_count_is_refused_before_anything_happens() -> None:
    with pytest.raises(ValueError, match="hypervisors: 0 is out of range; 1 to 9"):
        lab_fleet.up(hypervisors=0, log=False)
    assert traces() == []
