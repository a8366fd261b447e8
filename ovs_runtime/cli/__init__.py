"""The ``ovsr`` command line: ovs-vsctl's syntax, spoken to ``ovs-runtimed`` over RFC 7047.

- ``client``        a JSON-RPC client that never hangs (connect and reply timeouts)
- ``value_syntax``  ovs-vsctl's ``COLUMN[:KEY]=VALUE`` grammar <-> typed values
- ``model``         a client-side copy of the tables that commands read and change;
  it turns the changes into one transaction, guarded by ``wait`` operations
- ``command_registry`` how commands are declared; ``bridge_commands`` (``add-br``,
  ``add-port``...) and ``table_commands`` (``set``, ``get``, ``find``...)
- ``inspect_commands`` ``fdb-show``, ``fdb-flush``, ``dpif-show`` (asks the datapath)
- ``show``          the familiar ``show`` tree, as text or JSON
- ``apply``         ``ovsr apply FILE``: desired state, diffed, applied in one transaction
- ``main``          argument parsing, ``--`` chaining, waiting for ``cur_cfg``
"""
