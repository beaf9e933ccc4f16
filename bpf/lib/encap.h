/* IP-in-IP encapsulation towards the chosen real: 4in4 (protocol 4), 6in6 (41)
 * and 4in6 (4 over IPv6), or the same three in GUE (gue.h) for reals that want
 * UDP. The inner packet is left byte for byte as it came. */
#ifndef PETREL_ENCAP_H
#define PETREL_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"
#include "csum.h"
#include "parse.h"
#include "gue.h"

#define OUTER_TTL 64
#define IPV4_DONT_FRAGMENT 0x4000

static __always_inline __u32 outer_header_len(const struct petrel_real *real)
{
	return (real->family == PETREL_FAMILY_IPV6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
	       gue_extra_len(real);
}

/* The outer headers are built in registers and written as whole 32-bit words
 * (little-endian: a word's first byte is its lowest). Narrow stores read back
 * by a wider load make the CPU's store forwarding fail.
 *
 * The outer source differs per flow, so the reals' NICs spread flows over their
 * RSS queues; the prefix keeps it routable and recognisable. */
static __always_inline void write_outer_ipv4(struct iphdr *outer, const struct packet *pkt,
					     const struct petrel_real *real, const struct petrel_config *cfg,
					     __u32 hash)
{
	__u32 *word = (__u32 *)outer;
	__u32 prefix = bpf_ntohl(cfg->encap_src_v4_be) & 0xffff0000u;
	__u32 version_tos_len = (4 << 4 | sizeof(*outer) / 4) | (__u32)pkt->tos << 8 |
				(__u32)bpf_htons(sizeof(*outer) + gue_extra_len(real) + pkt->l3_len) << 16;
	__u32 id_fragment = (__u32)bpf_htons(IPV4_DONT_FRAGMENT) << 16;  /* id 0 */
	__u32 ttl_protocol = OUTER_TTL | (__u32)gue_outer_protocol(real, IPPROTO_IPIP) << 8;  /* checksum 0 for now */
	__u32 source = bpf_htonl(prefix | (hash & 0xffff));
	__u32 destination = real->addr_be[0];

	ttl_protocol |= (__u32)ipv4_words_checksum(version_tos_len, id_fragment, ttl_protocol, source, destination) << 16;
	word[0] = version_tos_len;
	word[1] = id_fragment;
	word[2] = ttl_protocol;
	word[3] = source;
	word[4] = destination;
}

static __always_inline void write_outer_ipv6(struct ipv6hdr *outer, const struct packet *pkt,
					     const struct petrel_real *real, const struct petrel_config *cfg,
					     __u32 hash)
{
	__u32 *word = (__u32 *)outer;
	__u8 next_header = gue_outer_protocol(real, pkt->flow.family == PETREL_FAMILY_IPV6 ? IPPROTO_IPV6 : IPPROTO_IPIP);

	/* version 6, traffic class = the inner TOS, flow label = 20 bits of the hash */
	word[0] = (6 << 4 | pkt->tos >> 4) | ((pkt->tos & 0x0f) << 4 | ((hash >> 16) & 0x0f)) << 8 |
		  ((hash >> 8) & 0xff) << 16 | (hash & 0xff) << 24;
	word[1] = (__u32)bpf_htons(gue_extra_len(real) + pkt->l3_len) | (__u32)next_header << 16 | (__u32)OUTER_TTL << 24;
	word[2] = cfg->encap_src_v6_be[0];
	word[3] = cfg->encap_src_v6_be[1];
	word[4] = pkt->flow.src_be[3] ^ pkt->flow.src_be[0];
	word[5] = bpf_htonl(hash);
	word[6] = real->addr_be[0];
	word[7] = real->addr_be[1];
	word[8] = real->addr_be[2];
	word[9] = real->addr_be[3];
}

/* Grows the packet at the front and writes L2 and the outer header. Returns
 * PETREL_STAT_FORWARD or the drop reason. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct packet *pkt,
				       const struct petrel_real *real, const struct petrel_config *cfg,
				       __u32 hash)
{
	__u32 outer_len = outer_header_len(real);
	__be16 outer_ethertype = real->family == PETREL_FAMILY_IPV6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	void *data, *end;
	struct ethhdr *eth;
	__be16 tpid = 0;

	if (outer_len + pkt->l3_len > cfg->mtu)
		return PETREL_STAT_DROP_TOO_BIG;

	if (pkt->has_vlan) {
		eth = (void *)(long)ctx->data;
		if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		tpid = eth->h_proto;
	}
	if (bpf_xdp_adjust_head(ctx, -(int)outer_len))
		return PETREL_STAT_DROP_ENCAP_FAILED;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return PETREL_STAT_DROP_ENCAP_FAILED;
	__builtin_memcpy(eth->h_dest, cfg->next_hop_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->interface_mac, ETH_ALEN);

	if (pkt->has_vlan) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		eth->h_proto = tpid;
		tag->tci = pkt->vlan_tci;
		tag->encapsulated_proto = outer_ethertype;
		data = tag + 1;
	} else {
		eth->h_proto = outer_ethertype;
		data = eth + 1;
	}

	if (real->family == PETREL_FAMILY_IPV6) {
		struct ipv6hdr *outer6 = data;

		if ((void *)(outer6 + 1) > end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		write_outer_ipv6(outer6, pkt, real, cfg, hash);
		data = outer6 + 1;
	} else {
		struct iphdr *outer4 = data;

		if ((void *)(outer4 + 1) > end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		write_outer_ipv4(outer4, pkt, real, cfg, hash);
		data = outer4 + 1;
	}
	if (real_uses_gue(real)) {
		struct udphdr *udp = data;

		if ((void *)(udp + 1) > end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		write_gue_udp(udp, pkt->l3_len, cfg->gue_port_be, hash);
	}
	return PETREL_STAT_FORWARD;
}

#endif
