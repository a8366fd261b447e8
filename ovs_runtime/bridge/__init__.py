"""The bridge layer: turns database rows into running bridges and ports.

The reconciler (``reconciler``) is told of every commit. When the configuration
changed, it works out which bridges and ports should exist, brings the running set in
line, writes status back (``Interface.ofport``, ``link_state``, ``error``...) and finally
sets ``Open_vSwitch.cur_cfg`` to the ``next_cfg`` it applied, which is how ``ovsr`` and
``ovs-vsctl`` know a change is live. This mirrors OVS's ``vswitchd/bridge.c``.
"""
