#!/usr/bin/env bash
# Install the Debian packages ovs-runtime needs to run, test and demo; idempotent.
# Runs as root on Debian 12. Only calls apt when something is missing.
set -euo pipefail

packages=(
  # runtime (the same set the .deb depends on)
  python3 python3-venv python3-setuptools python3-openvswitch python3-pyroute2 python3-yaml python3-systemd
  # tests and demo: real OVS tools to check compatibility and benchmark against
  openvswitch-switch iproute2 iputils-ping tcpdump iperf3 ethtool shellcheck procps
  # make bench: trafgen offers 64-byte frames at full speed (the switch's capacity)
  netsniff-ng
  # packages: build and lint the .deb and .rpm, verify the systemd unit
  debhelper dh-python pybuild-plugin-pyproject python3-all dpkg-dev fakeroot lintian
  rpm rpmlint systemd
  # tests: a booted Debian 12 host for package install, restart and upgrade tests
  debootstrap systemd-container
  # the lab fleet is managed over SSH (Ansible, Fabric, testinfra)
  openssh-client
  # make demo draws the fleet topology
  graphviz
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Do not let the openvswitch-switch package start its own daemons on install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ "$created_policy" -eq 1 ]; then
  rm -f "$policy"
fi
