"""The configuration database layer: an OVSDB (RFC 7047) server.

Everything above this layer (the ``ovsr`` CLI, Ansible modules, the real ``ovs-vsctl``)
reads and changes configuration through the OVSDB management protocol; everything below
(the bridge reconciler) learns of changes through commit notifications.

Modules, in the order a transaction meets them:

- ``jsonrpc``      framing and shape checks for JSON-RPC 1.0 messages on a stream
- ``server``       the asyncio unix-socket server and its method table
- ``transaction``  the RFC 7047 section 5.2 operations, executed against a ``txn_view``
- ``condition`` / ``mutation``  the ``where`` clauses and ``mutations`` of those operations
- ``integrity``    commit-time checks: references, garbage collection, indexes, maxRows
- ``database``     the committed state, commit pipeline and change notifications
- ``monitor``      ``monitor``/``monitor_cond``/``monitor_cond_since`` update computation
- ``storage``      durable storage in SQLite (WAL), ``wal_check`` for torn tails,
  ``migrate`` for converting data written by an older schema
"""
