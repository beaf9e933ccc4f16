/* Petrel's decapsulation program for the reals. It strips the outer header of
 * IP-in-IP packets addressed to this host (4in4, 6in6, 4in6) and of GUE variant 1
 * packets (outer IPv4 or IPv6 + UDP to the GUE port, then the inner IPv4 or IPv6
 * packet) and hands the inner packet to the kernel, where the VIP lives on
 * loopback and a normal socket answers the client directly. A packet to our GUE
 * port that is not a whole inner packet is dropped and counted, never delivered.
 * Everything else passes untouched. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct petrel_decap_addr);
	__type(value, __u32);
} decap_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_decap_settings);
} decap_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_DECAP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

struct l2_header {
	__u8   dest[ETH_ALEN];
	__u8   source[ETH_ALEN];
	__be16 ethertype;
	__be16 vlan_tci;         /* only with a VLAN tag */
	__be16 vlan_ethertype;   /* only with a VLAN tag */
};

static __always_inline void count(__u32 reason)
{
	__u64 *counter = bpf_map_lookup_elem(&decap_stats, &reason);

	if (counter)
		*counter += 1;
}

static __always_inline int is_local(const void *addr, __u32 len, __u8 family)
{
	struct petrel_decap_addr key = { .family = family };

	__builtin_memcpy(key.addr_be, addr, len);
	return bpf_map_lookup_elem(&decap_addrs, &key) != 0;
}

/* Moves the L2 header forward over the outer IP header, then drops the front. */
static __always_inline int strip(struct xdp_md *ctx, __u32 l2_len, __u32 outer_len, __be16 inner_ethertype)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct l2_header l2;
	struct l2_header *moved;

	if (data + sizeof(l2) > end)
		return PETREL_DECAP_DROP_MALFORMED;
	__builtin_memcpy(&l2, data, sizeof(l2));
	if (l2_len > sizeof(struct ethhdr))
		l2.vlan_ethertype = inner_ethertype;
	else
		l2.ethertype = inner_ethertype;

	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return PETREL_DECAP_DROP_ADJUST_FAILED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l2_len > end || data + sizeof(struct ethhdr) > end)
		return PETREL_DECAP_DROP_MALFORMED;
	/* The adjust above already moved data past the old L2 start; write L2 anew. */
	moved = data;
	if (l2_len > sizeof(struct ethhdr)) {
		if (data + sizeof(*moved) > end)
			return PETREL_DECAP_DROP_MALFORMED;
		__builtin_memcpy(moved, &l2, sizeof(*moved));
	} else {
		__builtin_memcpy(moved, &l2, sizeof(struct ethhdr));
	}
	return PETREL_DECAP_DECAPSULATED;
}

static __always_inline int is_gue_port(__be16 port)
{
	__u32 zero = 0;
	struct petrel_decap_settings *settings = bpf_map_lookup_elem(&decap_settings, &zero);

	return settings && settings->gue_port_be && settings->gue_port_be == port;
}

/* Checks a GUE variant 1 payload of udp_payload_len bytes at inner and finds its
 * family. The inner packet must fill the UDP payload exactly, so nothing is
 * handed up half-parsed and nothing trails it. */
static __always_inline int gue_inner(void *inner, void *end, __u32 udp_payload_len, __be16 *inner_ethertype)
{
	__u8 *version = inner;

	if ((void *)(version + 1) > end || inner + udp_payload_len > end)
		return PETREL_DECAP_DROP_GUE_MALFORMED;
	if (*version >> 4 == 4) {
		struct iphdr *ip = inner;

		if ((void *)(ip + 1) > end || ip->ihl < 5 || bpf_ntohs(ip->tot_len) != udp_payload_len)
			return PETREL_DECAP_DROP_GUE_MALFORMED;
		*inner_ethertype = bpf_htons(ETH_P_IP);
		return PETREL_DECAP_DECAPSULATED_GUE;
	}
	if (*version >> 4 == 6) {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > end || sizeof(*ip6) + bpf_ntohs(ip6->payload_len) != udp_payload_len)
			return PETREL_DECAP_DROP_GUE_MALFORMED;
		*inner_ethertype = bpf_htons(ETH_P_IPV6);
		return PETREL_DECAP_DECAPSULATED_GUE;
	}
	/* Variant 0 (a GUE header) and anything else: not a packet we can hand up. */
	return PETREL_DECAP_DROP_GUE_MALFORMED;
}

/* The UDP header at udp of an outer packet whose IP payload is ip_payload_len
 * bytes: a GUE packet for us, or something the kernel should have. */
static __always_inline int gue(struct xdp_md *ctx, __u32 l2_len, __u32 outer_ip_len, __u32 ip_payload_len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + l2_len + outer_ip_len;
	__be16 inner_ethertype = 0;
	__u32 udp_len;
	int reason;

	if ((void *)(udp + 1) > end)
		return PETREL_DECAP_DROP_GUE_MALFORMED;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len != ip_payload_len || udp_len < sizeof(*udp))
		return PETREL_DECAP_DROP_GUE_MALFORMED;
	reason = gue_inner(udp + 1, end, udp_len - sizeof(*udp), &inner_ethertype);
	if (reason != PETREL_DECAP_DECAPSULATED_GUE)
		return reason;
	reason = strip(ctx, l2_len, outer_ip_len + sizeof(*udp), inner_ethertype);
	return reason == PETREL_DECAP_DECAPSULATED ? PETREL_DECAP_DECAPSULATED_GUE : reason;
}

/* The UDP destination port of an outer packet, if the UDP header is there. */
static __always_inline __be16 udp_destination(void *udp_start, void *end)
{
	struct udphdr *udp = udp_start;

	return (void *)(udp + 1) > end ? 0 : udp->dest;
}

static __always_inline int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l2_len = sizeof(*eth);
	__be16 ethertype;

	if ((void *)(eth + 1) > end)
		return PETREL_DECAP_PASS_NOT_TUNNEL;
	ethertype = eth->h_proto;
	if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD)) {
		__be16 *inner_type = data + sizeof(*eth) + 2;

		if ((void *)(inner_type + 1) > end)
			return PETREL_DECAP_PASS_NOT_TUNNEL;
		ethertype = *inner_type;
		l2_len += 4;
	}

	if (ethertype == bpf_htons(ETH_P_IP)) {
		struct iphdr *outer = data + l2_len;
		__u32 outer_len, total_len;

		int is_gue;

		if ((void *)(outer + 1) > end)
			return PETREL_DECAP_PASS_NOT_TUNNEL;
		outer_len = outer->ihl * 4;
		is_gue = outer->protocol == IPPROTO_UDP && outer_len >= sizeof(*outer) &&
			 is_gue_port(udp_destination(data + l2_len + outer_len, end));
		if (outer->protocol != IPPROTO_IPIP && !is_gue)
			return PETREL_DECAP_PASS_NOT_TUNNEL;
		if (!is_local(&outer->daddr, 4, PETREL_FAMILY_IPV4))
			return PETREL_DECAP_PASS_NOT_LOCAL;
		/* Fragments are the kernel's to reassemble; stripping one would hand up a piece. */
		if (outer->frag_off & bpf_htons(0x3fff))
			return PETREL_DECAP_PASS_FRAGMENT;
		total_len = bpf_ntohs(outer->tot_len);
		if (is_gue) {
			if (total_len < outer_len || data + l2_len + total_len > end)
				return PETREL_DECAP_DROP_GUE_MALFORMED;
			return gue(ctx, l2_len, outer_len, total_len - outer_len);
		}
		if (outer_len < sizeof(*outer) || total_len < outer_len + sizeof(struct iphdr) ||
		    data + l2_len + total_len > end || data + l2_len + outer_len + sizeof(struct iphdr) > end)
			return PETREL_DECAP_DROP_MALFORMED;
		return strip(ctx, l2_len, outer_len, bpf_htons(ETH_P_IP));
	}

	if (ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *outer = data + l2_len;
		__be16 inner_ethertype;
		__u32 inner_min;

		if ((void *)(outer + 1) > end)
			return PETREL_DECAP_PASS_NOT_TUNNEL;
		if (outer->nexthdr == IPPROTO_IPV6) {
			inner_ethertype = bpf_htons(ETH_P_IPV6);
			inner_min = sizeof(struct ipv6hdr);
		} else if (outer->nexthdr == IPPROTO_IPIP) {
			inner_ethertype = bpf_htons(ETH_P_IP);
			inner_min = sizeof(struct iphdr);
		} else if (outer->nexthdr == IPPROTO_UDP &&
			   is_gue_port(udp_destination(data + l2_len + sizeof(*outer), end))) {
			if (!is_local(&outer->daddr, 16, PETREL_FAMILY_IPV6))
				return PETREL_DECAP_PASS_NOT_LOCAL;
			if (data + l2_len + sizeof(*outer) + bpf_ntohs(outer->payload_len) > end)
				return PETREL_DECAP_DROP_GUE_MALFORMED;
			return gue(ctx, l2_len, sizeof(*outer), bpf_ntohs(outer->payload_len));
		} else {
			return PETREL_DECAP_PASS_NOT_TUNNEL;
		}
		if (!is_local(&outer->daddr, 16, PETREL_FAMILY_IPV6))
			return PETREL_DECAP_PASS_NOT_LOCAL;
		if (bpf_ntohs(outer->payload_len) < inner_min ||
		    data + l2_len + sizeof(*outer) + bpf_ntohs(outer->payload_len) > end ||
		    data + l2_len + sizeof(*outer) + inner_min > end)
			return PETREL_DECAP_DROP_MALFORMED;
		return strip(ctx, l2_len, sizeof(*outer), inner_ethertype);
	}
	return PETREL_DECAP_PASS_NOT_TUNNEL;
}

SEC("xdp")
int petrel_decap(struct xdp_md *ctx)
{
	int reason;

	count(PETREL_DECAP_RX);
	reason = decap(ctx);
	count(reason);
	return reason == PETREL_DECAP_DROP_MALFORMED || reason == PETREL_DECAP_DROP_ADJUST_FAILED ||
	       reason == PETREL_DECAP_DROP_GUE_MALFORMED ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
