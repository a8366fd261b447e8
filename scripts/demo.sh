#!/usr/bin/env bash
# Single-host demo (until the lab fleet exists): a daemon on temporary directories,
# a bridge built with ovsr (declaratively, then by hand), read back with ovsr and with the
# real ovs-vsctl, then everything cleaned up.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN=$PWD/.venv/bin
work=$(mktemp -d /tmp/ovs-runtime-demo.XXXXXX)
daemon_pid=""

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

stage() { printf '\n=== %s\n' "$*"; }
ovsr() { "$VENV_BIN/ovsr" --db "unix:$work/run/db.sock" "$@"; }

stage "1. start ovs-runtimed with temporary state and run directories"
"$VENV_BIN/ovs-runtimed" --state-dir "$work/state" --run-dir "$work/run" \
  --config "$work/none.conf" 2> "$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/run/db.sock" ] && break; sleep 0.1; done

stage "2. declare a bridge with VLAN access ports, a trunk and a patch pair (ovsr apply)"
cat > "$work/desired.yaml" <<'YAML'
bridges:
  br0:
    other_config: {mac-aging-time: 300}
    ports:
      vm1: {tag: 10}
      vm2: {tag: 10}
      vm3: {tag: 20}
      uplink: {trunks: [10, 20], vlan_mode: trunk}
      patch-a: {type: patch, options: {peer: patch-b}}
  br1:
    ports:
      patch-b: {type: patch, options: {peer: patch-a}}
YAML
ovsr apply --check "$work/desired.yaml" || [ $? -eq 2 ]
ovsr apply "$work/desired.yaml" >/dev/null || [ $? -eq 2 ]
echo "second apply of the same file:"
ovsr apply "$work/desired.yaml"

stage "3. change it by hand, ovs-vsctl style, in one atomic transaction"
ovsr set Port vm3 tag=30 -- set Bridge br0 fail_mode=secure
echo "a bad change is rejected whole:"
ovsr add-port br0 vm4 -- set Port vm4 tag=5000 || true
ovsr list-ports br0

stage "4. ovsr show"
ovsr show

stage "5. the real ovs-vsctl, pointed at our socket"
ovs-vsctl --db="unix:$work/run/db.sock" --timeout=10 get Port vm3 tag

stage "daemon log"
cat "$work/daemon.log"
echo
echo "demo finished; the daemon is stopped and $work removed"
