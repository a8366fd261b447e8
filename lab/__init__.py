"""The lab: a real fleet on one machine, for the demo, Molecule and the fleet tests.

Not shipped in the packages: this is control-node tooling. ``lab.rootfs`` builds and
caches the Debian 12 image, ``lab.nspawn`` boots one host from it (systemd as PID 1, its
own network namespace), and ``lab.fleet`` brings up the rack (hypervisors, a top-of-rack
switch, bare-metal servers) and takes it down again. ``python -m lab up|down|status``.
"""
