"""The ofproto layer: per-bridge forwarding decisions, independent of packet I/O.

- ``mac_table``  learning per (VLAN, MAC), aging and an LRU size limit
- ``vlan``       a port's VLAN mode: which frames it accepts, how it outputs them
- ``normal``     OVS's NORMAL action: learn, look up, forward or flood within the VLAN

Everything takes ``now`` as an argument (no hidden clock), so tests need no sleeps.
"""
