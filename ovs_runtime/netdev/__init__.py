"""The netdev layer: port types, each behind the ``provider.Netdev`` interface.

- ``afpacket``  ``system`` ports: an existing kernel device, over an AF_PACKET socket
- ``tap``       ``internal`` and ``tap`` ports: TAP devices whose fd the daemon holds
- ``patch``     ``patch`` ports: a pair joining two bridges inside the daemon
- ``memory``    an in-memory port for unit tests (and the model a hardware port follows)
- ``link``      the few netlink operations ports need (pyroute2): link up, lookups

See PORTING.md for what a port to a switch chip implements instead.
"""
