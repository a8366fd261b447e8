"""The ``ovs-runtimed`` process: wires the layers together and speaks to systemd.

``main`` parses options and the config file, takes the run-directory lock, opens the
database, starts the OVSDB server and the bridge reconciler, and runs the event loop.
``systemd_notify`` sends READY/STATUS/WATCHDOG; ``config`` reads the conffile; ``heap``
keeps the cycle collector off the long-lived state of large flow tables.
"""
