#!/usr/bin/env bash
# Builds and tears down Petrel's test topology: a client, a router, the load
# balancer and three reals, each in its own network namespace, wired with veth.
# The load balancer sends IP-in-IP towards the reals through the router; the
# reals answer the client directly (direct server return). See scripts/README.md.
#
#   topology.sh create  PREFIX   build ${PREFIX}-client, -router, -lb, -real1..3
#   topology.sh destroy PREFIX   remove every namespace named ${PREFIX}-* (idempotent)
#   topology.sh env     PREFIX   print NAME=VALUE lines (shell-sourceable)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"

readonly REAL_COUNT=3
readonly LB_LINK_MTU=1600
readonly REAL_LINK_MTU=1600
readonly CLIENT_LINK_MTU=1500

# Interface names inside the router; every other namespace calls its link eth0.
readonly ROUTER_CLIENT_IF=eth-client
readonly ROUTER_LB_IF=eth-lb
readonly ROUTER_BRIDGE=br-reals

# The address plan. config/demo.yaml depends on it: change both together.
readonly CLIENT_NET4=198.18.1    CLIENT_NET6=fd50:0:1
readonly LB_NET4=198.18.2        LB_NET6=fd50:0:2
readonly REAL_NET4=198.18.3      REAL_NET6=fd50:0:3
readonly VIP4_1=198.18.100.1     VIP4_2=198.18.100.2     VIP6_1=fd50:0:100::1
readonly VIP_NET4=198.18.100.0/24 VIP_NET6=fd50:0:100::/64
readonly ROUTER_LB_MAC=02:00:00:00:02:01
readonly LB_MAC=02:00:00:00:02:02

usage() {
	cat >&2 <<'EOF'
usage: topology.sh create  PREFIX   build the namespaces PREFIX-client, -router, -lb, -real1..3
       topology.sh destroy PREFIX   remove every namespace PREFIX-* (and the processes inside)
       topology.sh env     PREFIX   print NAME=VALUE lines describing the topology
PREFIX: 1-16 letters, digits or '_' (no '-'), unique per run, e.g. pt$$.
EOF
	exit 2
}

die() {
	echo "topology.sh: $*" >&2
	exit 1
}

check_prefix() {
	[[ "$1" =~ ^[A-Za-z0-9_]{1,16}$ ]] ||
		die "PREFIX '$1' is invalid: expected 1-16 characters from [A-Za-z0-9_]"
}

ns_names() {
	local p=$1 i
	echo "$p-client" "$p-router" "$p-lb"
	for ((i = 1; i <= REAL_COUNT; i++)); do echo "$p-real$i"; done
}

# EXIT trap of create: a non-zero status means it stopped halfway.
cleanup_failed_create() {
	local rc=$?
	if ((rc != 0)); then
		echo "topology.sh: create failed (status $rc), removing $1-*" >&2
		destroy "$1" || true
	fi
	exit "$rc"
}

create() {
	local p=$1 router client lb i real
	router=$p-router client=$p-client lb=$p-lb

	if [[ -n "$(prefix_namespaces "$p")" ]]; then
		die "namespaces with prefix '$p-' already exist: run 'topology.sh destroy $p' first"
	fi
	ensure_tools

	# From here on, a failure removes whatever was built.
	# shellcheck disable=SC2064 # the prefix is fixed now
	trap "cleanup_failed_create $p" EXIT
	trap 'exit 130' INT TERM

	for ns in $(ns_names "$p"); do ns_baseline "$ns"; done

	# Router: forwards both families between its three sides.
	in_ns "$router" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	# Client link: client eth0 <-> router eth-client.
	veth "$client" eth0 "$router" "$ROUTER_CLIENT_IF"
	ip -n "$client" link set eth0 address 02:00:00:00:01:02 mtu "$CLIENT_LINK_MTU" up
	ip -n "$router" link set "$ROUTER_CLIENT_IF" address 02:00:00:00:01:01 mtu "$CLIENT_LINK_MTU" up
	addr "$client" eth0 "$CLIENT_NET4.2/24" "$CLIENT_NET6::2/64"
	addr "$router" "$ROUTER_CLIENT_IF" "$CLIENT_NET4.1/24" "$CLIENT_NET6::1/64"
	ip -n "$client" route add default via "$CLIENT_NET4.1"
	ip -n "$client" -6 route add default via "$CLIENT_NET6::1"
	# The client's veth would otherwise leave L4 checksums unfinished (CHECKSUM_PARTIAL);
	# a frame the LB re-sends with XDP_TX is a fresh buffer, and the real would drop it.
	in_ns "$client" ethtool -K eth0 tx off >/dev/null

	# LB link: lb eth0 <-> router eth-lb, fixed MACs so the LB can address the router.
	veth "$lb" eth0 "$router" "$ROUTER_LB_IF"
	ip -n "$lb" link set eth0 address "$LB_MAC" mtu "$LB_LINK_MTU" up
	ip -n "$router" link set "$ROUTER_LB_IF" address "$ROUTER_LB_MAC" mtu "$LB_LINK_MTU" up
	addr "$lb" eth0 "$LB_NET4.2/24" "$LB_NET6::2/64"
	addr "$router" "$ROUTER_LB_IF" "$LB_NET4.1/24" "$LB_NET6::1/64"
	# The LB answers with XDP_TX, which veth hands to this end's NAPI ring.
	router_accepts_xdp_tx "$router" "$ROUTER_LB_IF"
	ip -n "$router" route add "$VIP_NET4" via "$LB_NET4.2"
	ip -n "$router" -6 route add "$VIP_NET6" via "$LB_NET6::2"
	# The LB's own route to the VIPs, through the router: petreld's health-check probes are
	# sockets connected to a VIP that leave by eth0, where a tc program encapsulates them
	# to one real (docs/health-checks.md). Nothing else in the LB uses it.
	ip -n "$lb" route add "$VIP_NET4" via "$LB_NET4.1"
	ip -n "$lb" -6 route add "$VIP_NET6" via "$LB_NET6::1"

	# Reals: one bridge in the router, each real's eth0 a port of it.
	add_reals "$router" "$p" "$REAL_COUNT" "$ROUTER_BRIDGE" "$REAL_LINK_MTU" "$VIP4_1 $VIP4_2" "$VIP6_1"

	for ns in $(ns_names "$p"); do ns_no_rp_filter "$ns"; done

	trap - EXIT INT TERM
	echo "topology.sh: created $(ns_names "$p" | tr '\n' ' ')" >&2
}

destroy() {
	destroy_namespaces "$1"
}

env_vars() {
	local p=$1 i reals4="" reals6="" realns=""
	cat <<EOF
TOPO_PREFIX=$p
TOPO_NS_CLIENT=$p-client
TOPO_NS_ROUTER=$p-router
TOPO_NS_LB=$p-lb
EOF
	for ((i = 1; i <= REAL_COUNT; i++)); do
		echo "TOPO_NS_REAL$i=$p-real$i"
		echo "TOPO_REAL${i}_IP4=$REAL_NET4.1$i"
		echo "TOPO_REAL${i}_IP6=$REAL_NET6::1$i"
		realns+="${realns:+ }$p-real$i"
		reals4+="${reals4:+ }$REAL_NET4.1$i"
		reals6+="${reals6:+ }$REAL_NET6::1$i"
	done
	cat <<EOF
TOPO_NS_REALS="$realns"
TOPO_REAL_IP4S="$reals4"
TOPO_REAL_IP6S="$reals6"
TOPO_CLIENT_IP4=$CLIENT_NET4.2
TOPO_CLIENT_IP6=$CLIENT_NET6::2
TOPO_ROUTER_CLIENT_IP4=$CLIENT_NET4.1
TOPO_ROUTER_CLIENT_IP6=$CLIENT_NET6::1
TOPO_LB_IFACE=eth0
TOPO_LB_IP4=$LB_NET4.2
TOPO_LB_IP6=$LB_NET6::2
TOPO_LB_MAC=$LB_MAC
TOPO_LB_MTU=$LB_LINK_MTU
TOPO_ROUTER_LB_IFACE=$ROUTER_LB_IF
TOPO_ROUTER_LB_IP4=$LB_NET4.1
TOPO_ROUTER_LB_IP6=$LB_NET6::1
TOPO_ROUTER_MAC=$ROUTER_LB_MAC
TOPO_BRIDGE_IP4=$REAL_NET4.1
TOPO_BRIDGE_IP6=$REAL_NET6::1
TOPO_REAL_IFACE=eth0
TOPO_VIP4_1=$VIP4_1
TOPO_VIP4_2=$VIP4_2
TOPO_VIP6_1=$VIP6_1
TOPO_VIPS="$VIP4_1 $VIP4_2 $VIP6_1"
EOF
}

main() {
	(($# == 2)) || usage
	local cmd=$1 prefix=$2
	check_prefix "$prefix"
	case "$cmd" in
	create) create "$prefix" ;;
	destroy) destroy "$prefix" ;;
	env) env_vars "$prefix" ;;
	*) usage ;;
	esac
}

main "$@"
