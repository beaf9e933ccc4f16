/* QUIC connection-ID routing on VIPs flagged PETREL_VIP_QUIC. A client may move
 * to a new address or port mid-connection (migration, NAT rebinding); its
 * short-header packets still carry a connection ID the server chose, with the
 * server's id in it (Petrel CID format v1, petrel_abi.h). Those packets go to
 * the real with that id, whatever their 5-tuple. Long headers (the handshake),
 * and short headers whose id is zero, unknown or not in format v1, take the
 * normal path (connection tables, ring). Every case is counted. */
#ifndef PETREL_QUIC_H
#define PETREL_QUIC_H

#include <linux/ip.h>
#include <linux/udp.h>
#include "maps.h"
#include "parse.h"
#include "select.h"
#include "stats.h"

#define QUIC_LONG_HEADER 0x80

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PETREL_MAX_QUIC_SERVERS);
	__type(key, struct petrel_quic_server_key);
	__type(value, struct petrel_quic_server);
} quic_servers SEC(".maps");

/* The server id in a short header's destination connection ID, or 0 with the
 * reason counted. The UDP header was checked by parse_ports; the IP header is
 * re-read here for its length so struct packet stays as it is. */
static __always_inline __u32 quic_server_id(struct xdp_md *ctx, const struct packet *pkt,
					    struct petrel_counters *counters)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l2_len = pkt->l2_len;
	__u32 l3_header_len = sizeof(struct ipv6hdr);
	struct udphdr *udp;
	void *l3;
	__u8 *quic;
	__u32 server_id;

	/* Bounded for the verifier: Ethernet plus at most one VLAN tag. */
	if (l2_len > sizeof(struct ethhdr) + sizeof(struct vlan_tag))
		return 0;
	l3 = data + l2_len;

	if (pkt->flow.family == PETREL_FAMILY_IPV4) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return 0;
		l3_header_len = ip->ihl * 4;
	}
	udp = l3 + l3_header_len;
	if ((void *)(udp + 1) > end)
		return 0;
	quic = (void *)(udp + 1);
	if ((void *)(quic + 1) > end || bpf_ntohs(udp->len) < sizeof(*udp) + 1) {
		count_stat(counters, PETREL_STAT_EVENT_QUIC_CID_MALFORMED);
		return 0;
	}
	if (quic[0] & QUIC_LONG_HEADER) {
		count_stat(counters, PETREL_STAT_EVENT_QUIC_LONG_HEADER);
		return 0;
	}
	/* Short header: the destination connection ID follows the first byte. */
	if ((void *)(quic + 1 + PETREL_QUIC_CID_MIN_LEN) > end ||
	    bpf_ntohs(udp->len) < sizeof(*udp) + 1 + PETREL_QUIC_CID_MIN_LEN ||
	    quic[1] >> 5 != PETREL_QUIC_CID_V1) {
		count_stat(counters, PETREL_STAT_EVENT_QUIC_CID_MALFORMED);
		return 0;
	}
	server_id = ((__u32)quic[2] << 8) | quic[3];
	if (!server_id)
		count_stat(counters, PETREL_STAT_EVENT_QUIC_CID_ZERO);
	return server_id;
}

/* Fills out and returns 1 when the connection ID names a live real of this VIP. */
static __always_inline int quic_choose_real(struct xdp_md *ctx, const struct packet *pkt,
					    const struct petrel_vip_meta *vip, struct petrel_counters *counters,
					    struct choice *out)
{
	struct petrel_quic_server_key key = { .vip_index = vip->vip_index };
	struct petrel_quic_server *server;
	struct petrel_real *real;

	if (pkt->icmp_error || pkt->flow.protocol != IPPROTO_UDP)
		return 0;
	key.server_id = quic_server_id(ctx, pkt, counters);
	if (!key.server_id)
		return 0;
	server = bpf_map_lookup_elem(&quic_servers, &key);
	real = server ? bpf_map_lookup_elem(&reals, &server->real_id) : 0;
	if (!real || !real->family || real->generation != server->real_generation) {
		count_stat(counters, PETREL_STAT_EVENT_QUIC_CID_UNKNOWN);
		return 0;
	}
	out->real = real;
	out->real_id = server->real_id;
	out->hash = flow_hash(&pkt->flow, vip->flags);
	count_stat(counters, PETREL_STAT_EVENT_QUIC_CID_ROUTED);
	log_decision(pkt, vip, real, server->real_id, PETREL_FLOW_REASON_QUIC_CID, PETREL_FLOW_NO_TABLES, counters);
	return 1;
}

#endif
