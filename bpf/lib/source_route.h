/* Source-prefix routing on VIPs flagged PETREL_VIP_SOURCE_ROUTES: a new flow
 * from a client prefix pinned to a real goes to that real, the longest prefix
 * winning (map source_routes, petrel_abi.h). A pinned real that is out of
 * service (id 0) or gone (id freed or reused) leaves the flow to the ring. */
#ifndef PETREL_SOURCE_ROUTE_H
#define PETREL_SOURCE_ROUTE_H

#include "maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PETREL_MAX_SOURCE_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);  /* required for LPM tries */
	__type(key, struct petrel_source_route_key);
	__type(value, struct petrel_source_route);
} source_routes SEC(".maps");

/* The id of the live real the client's longest prefix pins it to, or 0. A
 * global function: the verifier checks it once, on its own. Inlined, its two
 * outcomes doubled the states explored on the rest of the packet's path
 * (44,848 -> 77,299 processed instructions; as a function: 48,221). */
__noinline __u32 source_routed_real_id(const struct petrel_flow_key *flow, __u32 vip_index)
{
	struct petrel_source_route_key key = {
		.prefixlen = PETREL_SOURCE_ROUTE_LOOKUP_LEN,
		.vip_index = vip_index,
	};
	struct petrel_source_route *route;
	struct petrel_real *real;
	__u32 id;

	if (!flow)
		return 0;
	key.src_be[0] = flow->src_be[0];
	key.src_be[1] = flow->src_be[1];
	key.src_be[2] = flow->src_be[2];
	key.src_be[3] = flow->src_be[3];
	route = bpf_map_lookup_elem(&source_routes, &key);
	if (!route || route->real_id == PETREL_NO_REAL)
		return 0;
	id = route->real_id;
	real = bpf_map_lookup_elem(&reals, &id);
	if (!real || !real->family || real->generation != route->real_generation)
		return 0;
	return id;
}

#endif
