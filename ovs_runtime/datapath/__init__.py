"""The datapath layer: the fast path that moves packets between ports.

- ``provider``    the datapath provider interface (what a hardware port implements)
- ``vnet_header`` the virtio-net header that carries checksum/GSO offload state
- ``netdev_factory`` opens ports by ``Interface.type``; ``fd_store`` keeps their fds
  in systemd's file-descriptor store across restarts
- ``flow_cache``  exact-match cache of forwarding decisions with precompiled actions
- ``userspace``   the userspace provider: an epoll loop over AF_PACKET/TAP ports that
  drains each ready port in batches and forwards through the cache or ``ofproto``
"""
