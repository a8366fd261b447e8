"""ovs-runtime: a multilayer virtual switch in Python, in the spirit of Open vSwitch.

Layers, top to bottom (nothing calls up):

- ``cli/``      the ``ovsr`` command line, speaking RFC 7047 to the daemon
- ``daemon/``   the ``ovs-runtimed`` process: wires the layers together, systemd glue
- ``db/``       the configuration database: schema, transactions, storage, monitors
- ``bridge/``   the reconciler: database rows -> running bridges, status written back
"""

__version__ = "0.1.0"
