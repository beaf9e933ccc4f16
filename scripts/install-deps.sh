#!/usr/bin/env bash
# Installs what Petrel needs on a fresh Debian machine of this kind (as root):
# libbpf/libxdp to build and run, iproute2/ethtool for the namespace topology,
# bpftool/xdp-tools for inspection, python3 (+matplotlib) for test hosts and plots;
# curl, prometheus (promtool and the server), tmux, tcpdump and tshark (reads petrel capture's pcapng comments)
# for the observability tests;
# aioquic (pip) for the QUIC test hosts; schemathesis (pip) for the admin API's document; systemd (systemd-analyze) and strace to check the
# systemd unit's sandbox; bird2 for BGP (petreld announces VIPs through it; the scale-out
# tests route with it).
# Quick when everything is already there.
set -euo pipefail

packages=(libbpf-dev libxdp-dev libelf-dev zlib1g-dev bpftool xdp-tools iproute2 ethtool python3 python3-pip python3-matplotlib bird2)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Without recommends: prometheus would bring node-exporter; the tests run their own server.
observability=(curl prometheus tmux tcpdump tshark systemd strace)
missing=()
for package in "${observability[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# aioquic (PyPI): the real QUIC stack behind the QUIC connection-ID routing tests
# (scripts/quic_host.py). Installed for the python3 the tests run.
if ! python3 -c "import aioquic" 2>/dev/null; then
    echo "install-deps: installing aioquic (pip)" >&2
    python3 -m pip install --quiet "aioquic>=1.2,<2" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "aioquic>=1.2,<2"
fi

# schemathesis (PyPI): the property-based API fuzzer that keeps docs/admin-api.yaml true
# against a running petreld (AdminOpenAPITests).
if ! command -v schemathesis >/dev/null; then
    echo "install-deps: installing schemathesis (pip)" >&2
    python3 -m pip install --quiet "schemathesis>=4.30,<5" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "schemathesis>=4.30,<5"
fi

# Pinned maps live on bpffs.
if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf
fi

command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
command -v swift >/dev/null || { echo "install-deps: Swift 6 is needed (expected at /opt/swift)" >&2; exit 1; }
