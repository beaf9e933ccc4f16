/* IP-in-IP encapsulation towards the chosen real: 4in4 (protocol 4), 6in6 (41)
 * and 4in6 (4 over IPv6). The inner packet is left byte for byte as it came. */
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

#define OUTER_TTL 64
#define IPV4_DONT_FRAGMENT 0x4000

static __always_inline __u32 outer_header_len(__u8 real_family)
{
	return real_family == PETREL_FAMILY_IPV6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
}

/* The outer source differs per flow, so the reals' NICs spread flows over their
 * RSS queues; the prefix keeps it routable and recognisable. */
static __always_inline void write_outer_ipv4(struct iphdr *outer, const struct packet *pkt,
					     const struct petrel_real *real, const struct petrel_config *cfg,
					     __u32 hash)
{
	__u32 prefix = bpf_ntohl(cfg->encap_src_v4_be) & 0xffff0000u;

	outer->version = 4;
	outer->ihl = sizeof(*outer) / 4;
	outer->tos = pkt->tos;
	outer->tot_len = bpf_htons(sizeof(*outer) + pkt->l3_len);
	outer->id = 0;
	outer->frag_off = bpf_htons(IPV4_DONT_FRAGMENT);
	outer->ttl = OUTER_TTL;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = bpf_htonl(prefix | (hash & 0xffff));
	outer->daddr = real->addr_be[0];
	outer->check = ipv4_header_checksum(outer);
}

static __always_inline void write_outer_ipv6(struct ipv6hdr *outer, const struct packet *pkt,
					     const struct petrel_real *real, const struct petrel_config *cfg,
					     __u32 hash)
{
	outer->version = 6;
	outer->priority = pkt->tos >> 4;
	outer->flow_lbl[0] = ((pkt->tos & 0x0f) << 4) | ((hash >> 16) & 0x0f);
	outer->flow_lbl[1] = (hash >> 8) & 0xff;
	outer->flow_lbl[2] = hash & 0xff;
	outer->payload_len = bpf_htons(pkt->l3_len);
	outer->nexthdr = pkt->flow.family == PETREL_FAMILY_IPV6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	outer->hop_limit = OUTER_TTL;
	outer->saddr.in6_u.u6_addr32[0] = cfg->encap_src_v6_be[0];
	outer->saddr.in6_u.u6_addr32[1] = cfg->encap_src_v6_be[1];
	outer->saddr.in6_u.u6_addr32[2] = pkt->flow.src_be[3] ^ pkt->flow.src_be[0];
	outer->saddr.in6_u.u6_addr32[3] = bpf_htonl(hash);
	__builtin_memcpy(&outer->daddr, real->addr_be, 16);
}

/* Grows the packet at the front and writes L2 and the outer header. Returns
 * PETREL_STAT_FORWARD or the drop reason. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct packet *pkt,
				       const struct petrel_real *real, const struct petrel_config *cfg,
				       __u32 hash)
{
	__u32 outer_len = outer_header_len(real->family);
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
	} else {
		struct iphdr *outer4 = data;

		if ((void *)(outer4 + 1) > end)
			return PETREL_STAT_DROP_ENCAP_FAILED;
		write_outer_ipv4(outer4, pkt, real, cfg, hash);
	}
	return PETREL_STAT_FORWARD;
}

#endif
