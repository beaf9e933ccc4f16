# shellcheck shell=bash
# Building blocks of Petrel's namespace test networks, shared by scripts/topology.sh
# (one balancer) and scripts/scale-out/topology.sh (several behind ECMP).
# The sourcing script defines ROOT (the repository) and die().

# Namespaces that currently exist for a prefix, one a line.
prefix_namespaces() {
	ip netns list 2>/dev/null | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'
}


in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

ensure_tools() {
	command -v ip >/dev/null || die "iproute2 ('ip') is required"
	command -v sysctl >/dev/null || die "procps ('sysctl') is required"
	CLANG_BIN=${CLANG:-$(command -v clang || echo /opt/swift/usr/bin/clang)}
	[[ -x "$CLANG_BIN" ]] ||
		die "clang is needed to build the router's XDP_PASS program: put it on PATH or set CLANG=/path/to/clang"
	if ! command -v ethtool >/dev/null; then
		echo "installing ethtool" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ethtool >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ethtool >/dev/null; } ||
			die "ethtool is missing and 'apt-get install ethtool' failed"
	fi
}

# Settings every namespace gets before its links exist, so new links inherit them:
# no IPv6 duplicate address detection (no wait) and no reverse-path filtering.
ns_baseline() {
	local ns=$1
	ip netns add "$ns"
	in_ns "$ns" sysctl -qw \
		net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
	ip -n "$ns" link set lo up
}

# rp_filter 0 on every interface, once all links exist (all/default were set first).
ns_no_rp_filter() {
	# shellcheck disable=SC2016 # $f expands in the namespace's shell
	in_ns "$1" sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done'
}

# A veth pair whose ends are born inside their namespaces: nothing touches the root one.
veth() {
	local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4
	ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b"
}

addr() {
	local ns=$1 dev=$2 a4=$3 a6=$4
	ip -n "$ns" addr add "$a4" dev "$dev"
	ip -n "$ns" -6 addr add "$a6" dev "$dev" nodad
}


# veth queues XDP_TX frames on the peer's NAPI ring whenever the peer has NAPI (GRO on
# or an XDP program), but it schedules that NAPI only when the peer runs XDP
# (veth_xdp_flush checks the peer's xdp_prog). With GRO alone the frames sit in the
# ring until unrelated traffic drains it, then overflow. So this end gets GRO and a
# program that passes everything.
router_accepts_xdp_tx() {
	local ns=$1 dev=$2 dir
	in_ns "$ns" ethtool -K "$dev" gro on >/dev/null
	dir=$(mktemp -d)
	# The same program Petrel ships for veth peers: bpf/xdp_pass.bpf.c.
	if ! "$CLANG_BIN" -O2 -g -target bpf -I /usr/include/x86_64-linux-gnu -c "$ROOT/bpf/xdp_pass.bpf.c" -o "$dir/xdp_pass.o" ||
		! ip -n "$ns" link set dev "$dev" xdpdrv obj "$dir/xdp_pass.o" sec xdp; then
		rm -rf "$dir"
		die "cannot attach the XDP_PASS program to $dev in $ns"
	fi
	rm -rf "$dir"
}


# Stops what still runs inside a namespace, so deleting it really frees its links.
stop_processes() {
	local ns=$1 pids tries
	pids=$(ip netns pids "$ns" 2>/dev/null || true)
	[[ -z "$pids" ]] && return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for ((tries = 0; tries < 20; tries++)); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -z "$pids" ]] && return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
}


# Deletes every namespace PREFIX-* and stops what runs in it (idempotent).
destroy_namespaces() {
	local p=$1 ns
	for ns in $(prefix_namespaces "$p"); do
		stop_processes "$ns"
		ip netns del "$ns" 2>/dev/null || [[ ! -e "/run/netns/$ns" ]] ||
			die "cannot delete namespace $ns"
	done
	return 0
}

# The reals' side of a router: one bridge (BRIDGE, REAL_NET4.1 / REAL_NET6::1), each
# real PREFIX-realN a port of it, with the VIPs on its loopback.
#   add_reals ROUTER_NS PREFIX COUNT BRIDGE MTU "VIP4..." "VIP6..."
add_reals() {
	local router=$1 p=$2 count=$3 bridge=$4 mtu=$5 vips4=$6 vips6=$7 i real vip
	ip -n "$router" link add "$bridge" type bridge mcast_snooping 0
	ip -n "$router" link set "$bridge" address 02:00:00:00:03:01 mtu "$mtu"
	for ((i = 1; i <= count; i++)); do
		real=$p-real$i
		veth "$real" eth0 "$router" "eth-real$i"
		ip -n "$router" link set "eth-real$i" address "02:00:00:00:03:2$i" mtu "$mtu" \
			master "$bridge" up
		ip -n "$real" link set eth0 address "02:00:00:00:03:1$i" mtu "$mtu" up
		addr "$real" eth0 "$REAL_NET4.1$i/24" "$REAL_NET6::1$i/64"
		# The VIPs live on loopback: the real accepts decapsulated packets for them
		# and answers from them. It must not claim them in ARP on the shared segment.
		for vip in $vips4; do ip -n "$real" addr add "$vip/32" dev lo; done
		for vip in $vips6; do ip -n "$real" -6 addr add "$vip/128" dev lo nodad; done
		in_ns "$real" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
		ip -n "$real" route add default via "$REAL_NET4.1"
		ip -n "$real" -6 route add default via "$REAL_NET6::1"
	done
	ip -n "$router" link set "$bridge" mtu "$mtu" up
	addr "$router" "$bridge" "$REAL_NET4.1/24" "$REAL_NET6::1/64"
}

# Closes every descriptor this script inherited beyond stdin, stdout and stderr, so
# daemons it starts (BIRD, petreld, test servers) hold nothing of its caller's: a
# caller that waits for an inherited socket or pipe to close would wait for ever.
close_inherited_fds() {
	local fd
	for fd in /proc/$$/fd/*; do
		fd=${fd##*/}
		[[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2 && fd != 255)) && eval "exec $fd>&-" 2>/dev/null
	done
	return 0
}
