"""``ovsr-fleet``: fleet operations over SSH, built on Fabric (control-node tooling, not
shipped in the packages).

It reads the same Ansible inventory as the playbooks (``fleet.inventory``) and runs
``status``, ``collect``, ``migrate`` and ``rolling-restart`` (``fleet.operations``) with
the commands an operator would type on each host.
"""
