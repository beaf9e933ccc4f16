/* ICMP the balancer answers itself, from the VIP address to the client, sent
 * back out with XDP_TX (MACs swapped):
 *  - echo requests to an address that has a VIP get an echo reply;
 *  - a packet for a VIP that would not fit the link once encapsulated gets
 *    "fragmentation needed" (IPv4, Don't Fragment set) or "packet too big"
 *    (IPv6) naming the MTU the client must use, so its path MTU discovery
 *    works through the balancer (docs/icmp.md).
 * Both are switched in the config map and share a per-CPU rate limit.
 *
 * Neither is inline in the forwarding path: the echo reply is a program of its
 * own (a tail call), the too-big answer a global function called by the
 * verdict for drop_too_big, after the forwarding code. The verifier checks each once, on
 * its own. Inlined, or returning a verdict into the forwarding code, either one
 * nearly tripled the verifier's work on the balancer (45,000 instructions
 * processed to 120,000): it could no longer merge the states of its paths. */
#ifndef PETREL_ICMP_H
#define PETREL_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"
#include "csum.h"
#include "encap.h"
#include "clock.h"
#include "maps.h"
#include "parse.h"
#include "select.h"
#include "stats.h"

#define ICMP_ECHO_REQUEST    8
#define ICMP_ECHO_REPLY      0
#define ICMPV6_ECHO_REQUEST  128
#define ICMP_FRAG_NEEDED     4   /* code of ICMP_DEST_UNREACH */
#define ICMPV6_ECHO_REPLY    129
#define ANSWER_TTL           64
#define IPV6_MIN_MTU         1280

/* How much of the offending packet a "too big" answer quotes. IPv4: the answer
 * is 576 bytes, the size every host must accept (RFC 1812 4.3.2.3); IPv6: as
 * much as fits in 1280 bytes (RFC 4443 2.4). Both are multiples of 4, as
 * bpf_csum_diff wants, and smaller than any packet that is too big for a link
 * of at least 1280 bytes, so the quote always has this exact length. */
#define TOO_BIG_QUOTE_V4     (576 - sizeof(struct iphdr) - sizeof(struct icmp_header))
#define TOO_BIG_QUOTE_V6     (IPV6_MIN_MTU - sizeof(struct ipv6hdr) - sizeof(struct icmp_header))
#define CSUM_CHUNK           512  /* the most bpf_csum_diff sums in one call */

/* Map vip_address_set: every address some VIP has, exactly (the address filter
 * may say "maybe" for others). Only an address in here is answered. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, struct petrel_vip_address);
	__type(value, __u32);
} vip_address_set SEC(".maps");

/* Map icmp_rate: the answers sent by this CPU in the current second. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_icmp_rate_state);
} icmp_rate SEC(".maps");

static __always_inline int is_vip_address(const struct petrel_flow_key *flow)
{
	struct petrel_vip_address key = {};

	if (!(vip_address_bits(flow) & PETREL_ADDR_VIP))
		return 0;
	__builtin_memcpy(key.addr_be, flow->dst_be, sizeof(key.addr_be));
	key.family = flow->family;
	return bpf_map_lookup_elem(&vip_address_set, &key) != 0;
}

/* Whether this CPU may send one more answer this second (icmp_rate_limit; 0: no
 * limit). Over it, the packet takes the path it would take without the answer. */
static __always_inline int answer_allowed(const struct petrel_config *cfg, struct petrel_counters *counters)
{
	struct petrel_icmp_rate_state *state;
	__u32 zero = 0;

	if (!cfg->icmp_rate_limit)
		return 1;
	state = bpf_map_lookup_elem(&icmp_rate, &zero);
	if (!state)
		return 1;
	if (second_passed(&state->window_start))
		state->sent = 0;
	if (++state->sent <= cfg->icmp_rate_limit)
		return 1;
	count_stat(counters, PETREL_STAT_EVENT_ICMP_RATE_LIMITED);
	return 0;
}

/* RFC 1624: the checksum after one 16-bit word changed from old to new. Words
 * are taken as they lie in memory; the one's complement sum does not care. */
static __always_inline __u16 checksum_replace(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 checksum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
}

/* ---- Echo ------------------------------------------------------------------ */

/* Map echo_program: slot 0 holds petrel_echo_reply, which the balancer jumps to
 * (a tail call) with ICMP that is not an error about a flow. A separate program
 * costs the forwarding path nothing, not even verifier states; the control
 * plane fills the slot after loading. An empty slot: passed, as before. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} echo_program SEC(".maps");

/* An echo request to an address that has a VIP becomes the reply in place:
 * addresses swapped, type changed, TTL or hop limit reset; id, sequence and
 * payload stay. The ICMP checksum changes by the type word alone (swapping the
 * addresses leaves ICMPv6's pseudo-header sum as it was). Returns REPLY_ECHO,
 * or PASS_ICMP with the packet untouched. */
static __always_inline int echo_answer(struct xdp_md *ctx, struct petrel_counters *counters)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct petrel_flow_key flow = {};
	struct icmp_header *icmp;
	struct petrel_config *cfg;
	struct ethhdr *eth = data;
	__u32 l2_len = sizeof(*eth), zero = 0;
	__be16 ethertype;
	__u16 old_word;

	if ((void *)(eth + 1) > end)
		return PETREL_STAT_PASS_ICMP;
	ethertype = eth->h_proto;
	if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return PETREL_STAT_PASS_ICMP;
		ethertype = tag->encapsulated_proto;
		l2_len += sizeof(*tag);
	}
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !(cfg->icmp_answers & PETREL_ICMP_ECHO_REPLY))
		return PETREL_STAT_PASS_ICMP;

	if (ethertype == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l2_len;
		__be32 client;

		/* Options (record route, ...) are the kernel's business. */
		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_ICMP)
			return PETREL_STAT_PASS_ICMP;
		icmp = (void *)(ip + 1);
		if ((void *)(icmp + 1) > end || icmp->type != ICMP_ECHO_REQUEST || icmp->code != 0)
			return PETREL_STAT_PASS_ICMP;
		flow.dst_be[0] = ip->daddr;
		flow.family = PETREL_FAMILY_IPV4;
		if (!is_vip_address(&flow) || !answer_allowed(cfg, counters))
			return PETREL_STAT_PASS_ICMP;
		client = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = client;
		ip->ttl = ANSWER_TTL;
		ip->check = 0;
		ip->check = ipv4_header_checksum(ip);
		old_word = *(__u16 *)icmp;
		icmp->type = ICMP_ECHO_REPLY;
	} else if (ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l2_len;
		struct in6_addr client;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_ICMPV6)
			return PETREL_STAT_PASS_ICMP;
		icmp = (void *)(ip6 + 1);
		if ((void *)(icmp + 1) > end || icmp->type != ICMPV6_ECHO_REQUEST || icmp->code != 0)
			return PETREL_STAT_PASS_ICMP;
		__builtin_memcpy(flow.dst_be, &ip6->daddr, 16);
		flow.family = PETREL_FAMILY_IPV6;
		if (!is_vip_address(&flow) || !answer_allowed(cfg, counters))
			return PETREL_STAT_PASS_ICMP;
		client = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = client;
		ip6->hop_limit = ANSWER_TTL;
		old_word = *(__u16 *)icmp;
		icmp->type = ICMPV6_ECHO_REPLY;
	} else {
		return PETREL_STAT_PASS_ICMP;
	}
	icmp->checksum = checksum_replace(icmp->checksum, old_word, *(__u16 *)icmp);
	swap_macs(eth);
	return PETREL_STAT_REPLY_ECHO;
}

/* ---- Too big ----------------------------------------------------------------- */

/* What a too-big answer needs of the offending packet, read again from the
 * frame: the forwarding path passes no pointer to its own state, which would
 * keep all of it alive for the verifier and multiply the states it checks. */
struct offender {
	__be32 src_be[4];
	__be32 dst_be[4];
	__u32  l2_len;
	__u32  l3_len;
	__u8   v4;
	__u8   has_vlan;
	__u8   dont_fragment;  /* IPv6 always: routers never fragment it */
	__u8   protocol;
};

static __always_inline int read_offender(void *data, void *end, struct offender *o)
{
	struct ethhdr *eth = data;
	__be16 ethertype;

	if ((void *)(eth + 1) > end)
		return 0;
	ethertype = eth->h_proto;
	o->l2_len = sizeof(*eth);
	if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return 0;
		ethertype = tag->encapsulated_proto;
		o->l2_len += sizeof(*tag);
		o->has_vlan = 1;
	}
	if (ethertype == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + o->l2_len;

		if ((void *)(ip + 1) > end)
			return 0;
		o->v4 = 1;
		o->src_be[0] = ip->saddr;
		o->dst_be[0] = ip->daddr;
		o->l3_len = bpf_ntohs(ip->tot_len);
		o->dont_fragment = !!(ip->frag_off & bpf_htons(IPV4_DONT_FRAGMENT));
		o->protocol = ip->protocol;
		return 1;
	}
	if (ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + o->l2_len;

		if ((void *)(ip6 + 1) > end)
			return 0;
		__builtin_memcpy(o->src_be, &ip6->saddr, 16);
		__builtin_memcpy(o->dst_be, &ip6->daddr, 16);
		o->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		o->dont_fragment = 1;
		o->protocol = ip6->nexthdr;
		return 1;
	}
	return 0;
}

/* Whether an ICMP error may go to the offender's source: never to anything but
 * one host (RFC 1812 4.3.2.7, RFC 4443 2.4 e), never about an ICMP error. */
static __always_inline int may_answer(const struct offender *o)
{
	__u32 first = bpf_ntohl(o->src_be[0]);

	if (o->protocol == IPPROTO_ICMP || o->protocol == IPPROTO_ICMPV6)
		return 0;
	if (o->v4)  /* not 0/8, 127/8, multicast, 240/4 or broadcast */
		return (first >> 24) != 0 && (first >> 24) != 127 && first < 0xe0000000u;
	if ((first >> 24) == 0xff)  /* multicast */
		return 0;
	/* not :: (unspecified) or ::1 (loopback) */
	return first || o->src_be[1] || o->src_be[2] || bpf_ntohl(o->src_be[3]) > 1;
}

/* Adds the quote's sum: len bytes (a constant multiple of 4) from quote, in
 * bpf_csum_diff's chunks. Returns 0 when the frame is shorter. */
static __always_inline int add_quote_sum(void *quote, void *end, const __u32 len, __u64 *sum)
{
#pragma unroll
	for (__u32 done = 0; done < len; done += CSUM_CHUNK) {
		__u32 chunk = len - done < CSUM_CHUNK ? len - done : CSUM_CHUNK;

		if (quote + done + chunk > end)
			return 0;
		*sum += (__u32)bpf_csum_diff(0, 0, quote + done, chunk, 0);
	}
	return 1;
}

/* Turns the frame into the answer: the headers grow in front of the packet,
 * which stays where it is as the quote, and the tail is cut after the quote.
 * outer_len is what the chosen real's encapsulation adds.
 * Returns REPLY_TOO_BIG, or DROP_TOO_BIG when no answer is due or possible. */
static __always_inline int too_big_answer(struct xdp_md *ctx, __u32 outer_len, struct petrel_counters *counters)
{
	__u8 l2[sizeof(struct ethhdr) + sizeof(struct vlan_tag)];
	__u32 header_len, quote_len, l2_len, mtu, zero = 0;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct offender o = {};
	struct petrel_config *cfg;
	struct icmp_header *icmp;
	struct ethhdr *eth;
	__u64 sum, frame_len;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !read_offender(data, end, &o))
		return PETREL_STAT_DROP_TOO_BIG;
	header_len = (o.v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) + sizeof(struct icmp_header);
	quote_len = o.v4 ? TOO_BIG_QUOTE_V4 : TOO_BIG_QUOTE_V6;
	l2_len = o.l2_len;
	mtu = cfg->mtu - outer_len;
	/* IPv4 without DF: XDP cannot fragment, and a client that allows fragments
	 * is not asking for a smaller size. */
	if (!o.dont_fragment || !may_answer(&o) || o.l3_len < quote_len || l2_len > sizeof(l2) ||
	    mtu > cfg->mtu || data + sizeof(l2) > end)
		return PETREL_STAT_DROP_TOO_BIG;
	if (!(cfg->icmp_answers & PETREL_ICMP_TOO_BIG) || !answer_allowed(cfg, counters))
		return PETREL_STAT_DROP_TOO_BIG;
	if (!o.v4 && mtu < IPV6_MIN_MTU)
		mtu = IPV6_MIN_MTU;

	/* A length, not a pointer, before clang folds it into pointer arithmetic. */
	frame_len = end - data;
	asm volatile("" : "+r"(frame_len));
	__builtin_memcpy(l2, data, sizeof(l2));
	if (bpf_xdp_adjust_head(ctx, -(int)header_len))
		return PETREL_STAT_DROP_TOO_BIG;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + quote_len) - (int)frame_len))
		return PETREL_STAT_DROP_TOO_BIG;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;

	/* L2: back where the packet came from, on its VLAN. */
	eth = data;
	if ((void *)(eth + 1) > end)
		return PETREL_STAT_DROP_TOO_BIG;
	__builtin_memcpy(eth->h_dest, l2 + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth->h_source, l2, ETH_ALEN);
	eth->h_proto = *(__be16 *)(l2 + 2 * ETH_ALEN);
	if (o.has_vlan) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return PETREL_STAT_DROP_TOO_BIG;
		*tag = *(struct vlan_tag *)(l2 + sizeof(struct ethhdr));
	}

	if (o.v4) {
		struct iphdr *ip = data + l2_len;
		__u32 *word = (__u32 *)ip;
		__u32 w0 = (4 << 4 | 5) | (__u32)bpf_htons(sizeof(*ip) + sizeof(*icmp) + TOO_BIG_QUOTE_V4) << 16;
		__u32 w2 = ANSWER_TTL | IPPROTO_ICMP << 8;

		if ((void *)(ip + 1) > end)
			return PETREL_STAT_DROP_TOO_BIG;
		w2 |= (__u32)ipv4_words_checksum(w0, 0, w2, o.dst_be[0], o.src_be[0]) << 16;
		word[0] = w0;
		word[1] = 0;  /* id 0, may be fragmented */
		word[2] = w2;
		word[3] = o.dst_be[0];  /* from the VIP */
		word[4] = o.src_be[0];  /* to the client */
		icmp = (void *)(ip + 1);
		if ((void *)(icmp + 1) > end)
			return PETREL_STAT_DROP_TOO_BIG;
		icmp->type = ICMP_DEST_UNREACH;
		icmp->code = ICMP_FRAG_NEEDED;
		icmp->rest = bpf_htonl(mtu);  /* unused 16 bits, then the next-hop MTU */
		icmp->checksum = 0;
		sum = *(__u32 *)icmp + icmp->rest;
		if (!add_quote_sum(icmp + 1, end, TOO_BIG_QUOTE_V4, &sum))
			return PETREL_STAT_DROP_TOO_BIG;
	} else {
		struct ipv6hdr *ip6 = data + l2_len;
		__u32 *word = (__u32 *)ip6;
		__u32 payload_len = sizeof(*icmp) + TOO_BIG_QUOTE_V6;

		if ((void *)(ip6 + 1) > end)
			return PETREL_STAT_DROP_TOO_BIG;
		word[0] = 6 << 4;  /* traffic class and flow label 0 */
		word[1] = (__u32)bpf_htons(payload_len) | (__u32)IPPROTO_ICMPV6 << 16 | (__u32)ANSWER_TTL << 24;
		__builtin_memcpy(&ip6->saddr, o.dst_be, 16);
		__builtin_memcpy(&ip6->daddr, o.src_be, 16);
		icmp = (void *)(ip6 + 1);
		if ((void *)(icmp + 1) > end)
			return PETREL_STAT_DROP_TOO_BIG;
		icmp->type = ICMPV6_PKT_TOOBIG;
		icmp->code = 0;
		icmp->rest = bpf_htonl(mtu);
		/* The pseudo-header: both addresses, the length, the next header. */
		sum = (__u64)o.src_be[0] + o.src_be[1] + o.src_be[2] + o.src_be[3] +
		      o.dst_be[0] + o.dst_be[1] + o.dst_be[2] + o.dst_be[3] +
		      bpf_htonl(payload_len) + bpf_htonl(IPPROTO_ICMPV6);
		icmp->checksum = 0;
		sum += *(__u32 *)icmp + icmp->rest;
		if (!add_quote_sum(icmp + 1, end, TOO_BIG_QUOTE_V6, &sum))
			return PETREL_STAT_DROP_TOO_BIG;
	}
	icmp->checksum = checksum_fold(sum);
	return PETREL_STAT_REPLY_TOO_BIG;
}

/* The balancer's verdict for a packet counted as drop_too_big: answered (the
 * count moves to reply_too_big, on this CPU's record) or dropped. */
__noinline int answer_too_big(struct xdp_md *ctx, __u32 outer_len)
{
	struct petrel_counters *counters = cpu_counters();

	if (!counters || too_big_answer(ctx, outer_len, counters) != PETREL_STAT_REPLY_TOO_BIG)
		return XDP_DROP;
	counters->count[PETREL_STAT_DROP_TOO_BIG] -= 1;
	counters->count[PETREL_STAT_REPLY_TOO_BIG] += 1;
	return XDP_TX;
}

#endif
