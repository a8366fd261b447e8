"""The packet layer: parsing and building headers, with no state and no I/O.

``ethernet`` handles the Ethernet header and 802.1Q tags: where the VLAN is, how to push
and pop a tag, and which frames are malformed (runts, truncated tags, oversize frames).
"""
