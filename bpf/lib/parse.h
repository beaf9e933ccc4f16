/* Packet parsing: Ethernet (one 802.1Q/802.1ad tag), IPv4, IPv6, TCP, UDP and
 * the ICMP errors that quote a flow. Every read is bounds-checked; a header that
 * is cut short or lies about its length makes the packet MALFORMED. */
#ifndef PETREL_PARSE_H
#define PETREL_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"

#define IPV4_FRAGMENT_BITS 0x3fff /* MF flag and fragment offset */
#define IPV6_FRAGMENT_HEADER 44

/* ICMP and ICMPv6 share this 8-byte header; linux/icmp.h would pull in libc. */
struct icmp_header {
	__u8   type;
	__u8   code;
	__be16 checksum;
	__be32 rest;
};

#define ICMP_DEST_UNREACH     3
#define ICMP_TIME_EXCEEDED    11
#define ICMPV6_DEST_UNREACH   1
#define ICMPV6_PKT_TOOBIG     2
#define ICMPV6_TIME_EXCEED    3

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* What the balancer needs to know about one packet. */
struct packet {
	struct petrel_flow_key flow;  /* the client's flow (for ICMP errors: the quoted one, turned around) */
	__u32 l2_len;                 /* Ethernet header plus VLAN tag */
	__u32 l3_len;                 /* IP packet length as its header declares it */
	__u8  tos;                    /* IPv4 TOS / IPv6 traffic class, copied to the outer header */
	__u8  tcp_syn;                /* a SYN without ACK: the first packet of a TCP connection */
	__u8  icmp_error;             /* an ICMP error about a flow, not the flow itself */
	__u8  has_vlan;
	__be16 vlan_tci;
};

/* Outcome of parsing: PARSE_OK or the petrel_stat reason that ends the packet's journey. */
#define PARSE_OK PETREL_STAT_COUNT

/* The flow key's tail is written as whole 32-bit words: the kernel hashes and
 * compares a key word by word, and a word assembled from narrower stores makes
 * the CPU's store-to-load forwarding fail (a stall on every lookup). */
static __always_inline void set_flow_ports(struct petrel_flow_key *flow, __be16 src, __be16 dst)
{
	*(__u32 *)&flow->src_port_be = (__u32)src | (__u32)dst << 16;
}

static __always_inline void set_flow_protocol(struct petrel_flow_key *flow, __u8 protocol, __u8 family)
{
	*(__u32 *)&flow->protocol = (__u32)protocol | (__u32)family << 8;
}

/* l4_len is what the IP header declares; end is the real end of the frame. Both
 * bound every read (the verifier only trusts end; the protocol trusts l4_len). */
static __always_inline int parse_ports(void *l4, void *end, __u32 l4_len, __u8 protocol, struct packet *pkt)
{
	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > end || l4_len < sizeof(*tcp) || tcp->doff < 5 || tcp->doff * 4 > l4_len)
			return PETREL_STAT_DROP_MALFORMED;
		set_flow_ports(&pkt->flow, tcp->source, tcp->dest);
		pkt->tcp_syn = tcp->syn && !tcp->ack;
		return PARSE_OK;
	}
	if (protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > end || l4_len < sizeof(*udp))
			return PETREL_STAT_DROP_MALFORMED;
		if (bpf_ntohs(udp->len) < sizeof(*udp) || bpf_ntohs(udp->len) > l4_len)
			return PETREL_STAT_DROP_MALFORMED;
		set_flow_ports(&pkt->flow, udp->source, udp->dest);
		return PARSE_OK;
	}
	return PETREL_STAT_PASS_UNSUPPORTED;
}

/* An ICMP error quotes the IP header and first 8 bytes of the packet that caused
 * it: a packet the real sent from the VIP to the client. Turned around, that is
 * the client's flow, so the error can follow the flow to its real. */
static __always_inline int parse_quoted_ipv4(void *quoted, void *end, __u32 quoted_len, struct packet *pkt)
{
	struct iphdr *ip = quoted;
	__u32 header_len;
	__be16 *ports;

	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return PETREL_STAT_PASS_ICMP;
	if (quoted_len < ip->ihl * 4 + 4)
		return PETREL_STAT_PASS_ICMP;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return PETREL_STAT_PASS_ICMP;
	header_len = ip->ihl * 4;
	ports = quoted + header_len;
	if ((void *)(ports + 2) > end)
		return PETREL_STAT_PASS_ICMP;
	pkt->flow.src_be[0] = ip->daddr;
	pkt->flow.dst_be[0] = ip->saddr;
	set_flow_ports(&pkt->flow, ports[1], ports[0]);
	set_flow_protocol(&pkt->flow, ip->protocol, PETREL_FAMILY_IPV4);
	pkt->icmp_error = 1;
	return PARSE_OK;
}

static __always_inline int parse_quoted_ipv6(void *quoted, void *end, __u32 quoted_len, struct packet *pkt)
{
	struct ipv6hdr *ip6 = quoted;
	__be16 *ports;

	if ((void *)(ip6 + 1) > end || ip6->version != 6 || quoted_len < sizeof(*ip6) + 4)
		return PETREL_STAT_PASS_ICMP;
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return PETREL_STAT_PASS_ICMP;
	ports = (void *)(ip6 + 1);
	if ((void *)(ports + 2) > end)
		return PETREL_STAT_PASS_ICMP;
	__builtin_memcpy(pkt->flow.src_be, &ip6->daddr, 16);
	__builtin_memcpy(pkt->flow.dst_be, &ip6->saddr, 16);
	set_flow_ports(&pkt->flow, ports[1], ports[0]);
	set_flow_protocol(&pkt->flow, ip6->nexthdr, PETREL_FAMILY_IPV6);
	pkt->icmp_error = 1;
	return PARSE_OK;
}

static __always_inline int parse_icmpv4(void *l4, void *end, __u32 l4_len, struct packet *pkt)
{
	struct icmp_header *icmp = l4;

	if ((void *)(icmp + 1) > end || l4_len < sizeof(*icmp))
		return PETREL_STAT_DROP_MALFORMED;
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED)
		return PETREL_STAT_PASS_ICMP;
	return parse_quoted_ipv4(icmp + 1, end, l4_len - sizeof(*icmp), pkt);
}

static __always_inline int parse_icmpv6(void *l4, void *end, __u32 l4_len, struct packet *pkt)
{
	struct icmp_header *icmp = l4;

	if ((void *)(icmp + 1) > end || l4_len < sizeof(*icmp))
		return PETREL_STAT_DROP_MALFORMED;
	if (icmp->type != ICMPV6_DEST_UNREACH && icmp->type != ICMPV6_PKT_TOOBIG &&
	    icmp->type != ICMPV6_TIME_EXCEED)
		return PETREL_STAT_PASS_ICMP;
	return parse_quoted_ipv6(icmp + 1, end, l4_len - sizeof(*icmp), pkt);
}

static __always_inline int parse_ipv4(void *l3, void *end, struct packet *pkt)
{
	struct iphdr *ip = l3;
	__u32 header_len, total_len;

	if ((void *)(ip + 1) > end)
		return PETREL_STAT_DROP_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PETREL_STAT_DROP_MALFORMED;
	header_len = ip->ihl * 4;
	total_len = bpf_ntohs(ip->tot_len);
	if (total_len < header_len || l3 + total_len > end)
		return PETREL_STAT_DROP_MALFORMED;
	if (ip->frag_off & bpf_htons(IPV4_FRAGMENT_BITS))
		return PETREL_STAT_PASS_FRAGMENT;

	pkt->flow.src_be[0] = ip->saddr;
	pkt->flow.dst_be[0] = ip->daddr;
	set_flow_protocol(&pkt->flow, ip->protocol, PETREL_FAMILY_IPV4);
	pkt->l3_len = total_len;
	pkt->tos = ip->tos;

	if (ip->protocol == IPPROTO_ICMP)
		return parse_icmpv4(l3 + header_len, end, total_len - header_len, pkt);
	return parse_ports(l3 + header_len, end, total_len - header_len, ip->protocol, pkt);
}

static __always_inline int parse_ipv6(void *l3, void *end, struct packet *pkt)
{
	struct ipv6hdr *ip6 = l3;
	__u32 total_len;

	if ((void *)(ip6 + 1) > end)
		return PETREL_STAT_DROP_MALFORMED;
	if (ip6->version != 6)
		return PETREL_STAT_DROP_MALFORMED;
	total_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (l3 + total_len > end)
		return PETREL_STAT_DROP_MALFORMED;

	__builtin_memcpy(pkt->flow.src_be, &ip6->saddr, 16);
	__builtin_memcpy(pkt->flow.dst_be, &ip6->daddr, 16);
	set_flow_protocol(&pkt->flow, ip6->nexthdr, PETREL_FAMILY_IPV6);
	pkt->l3_len = total_len;
	pkt->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);

	if (ip6->nexthdr == IPV6_FRAGMENT_HEADER)
		return PETREL_STAT_PASS_FRAGMENT;
	if (ip6->nexthdr == IPPROTO_ICMPV6)
		return parse_icmpv6(ip6 + 1, end, total_len - sizeof(*ip6), pkt);
	return parse_ports(ip6 + 1, end, total_len - sizeof(*ip6), ip6->nexthdr, pkt);
}

/* Fills pkt and returns PARSE_OK, or the reason the packet is not load-balanced. */
static __always_inline int parse_packet(void *data, void *end, struct packet *pkt)
{
	struct ethhdr *eth = data;
	__be16 ethertype;

	if ((void *)(eth + 1) > end)
		return PETREL_STAT_DROP_MALFORMED;
	ethertype = eth->h_proto;
	pkt->l2_len = sizeof(*eth);

	if (ethertype == bpf_htons(ETH_P_8021Q) || ethertype == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = (void *)(eth + 1);

		if ((void *)(tag + 1) > end)
			return PETREL_STAT_DROP_MALFORMED;
		pkt->has_vlan = 1;
		pkt->vlan_tci = tag->tci;
		ethertype = tag->encapsulated_proto;
		pkt->l2_len += sizeof(*tag);
	}

	if (ethertype == bpf_htons(ETH_P_IP))
		return parse_ipv4(data + pkt->l2_len, end, pkt);
	if (ethertype == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data + pkt->l2_len, end, pkt);
	return PETREL_STAT_PASS_NOT_IP;
}

#endif
