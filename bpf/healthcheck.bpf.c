/* Health-check forwarding: a tc egress (cls_bpf, direct action) program on the
 * balancer's interface. petreld's probes are ordinary sockets connected to a
 * VIP's address and port and carrying a mark (SO_MARK) that names one real;
 * this program encapsulates their packets to that real exactly as the balancer
 * does (IP-in-IP, 4in4, 6in6 or 4in6, towards the next hop's MAC), so a probe
 * passes only if that real serves that VIP. The real answers the prober
 * directly (direct server return). Unmarked packets are not touched. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"
#include "lib/csum.h"

#define OUTER_TTL 64
#define IPV4_DONT_FRAGMENT 0x4000

/* Mark -> real. The control plane writes one entry per real it probes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct petrel_real);
} health_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_config);
} health_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_HEALTH_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} health_stats SEC(".maps");

static __always_inline void count_health(__u32 reason)
{
	__u64 *value = bpf_map_lookup_elem(&health_stats, &reason);

	if (value)
		*value += 1;
}

/* The inner packet's DSCP/ECN byte, copied to the outer header like the balancer does. */
static __always_inline __u8 inner_tos(struct __sk_buff *skb, int inner_v6)
{
	__u8 bytes[2] = {};

	if (bpf_skb_load_bytes(skb, ETH_HLEN, bytes, sizeof(bytes)))
		return 0;
	return inner_v6 ? (__u8)((bytes[0] << 4) | (bytes[1] >> 4)) : bytes[1];
}

static __always_inline int write_outer_ipv4(struct __sk_buff *skb, const struct petrel_real *real,
					    const struct petrel_config *cfg, __u32 inner_len, __u8 tos, __u32 hash)
{
	struct iphdr outer = {};
	__u32 prefix = bpf_ntohl(cfg->encap_src_v4_be) & 0xffff0000u;

	outer.version = 4;
	outer.ihl = sizeof(outer) / 4;
	outer.tos = tos;
	outer.tot_len = bpf_htons(sizeof(outer) + inner_len);
	outer.frag_off = bpf_htons(IPV4_DONT_FRAGMENT);
	outer.ttl = OUTER_TTL;
	outer.protocol = IPPROTO_IPIP;
	outer.saddr = bpf_htonl(prefix | (hash & 0xffff));
	outer.daddr = real->addr_be[0];
	outer.check = ipv4_header_checksum(&outer);
	return bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0);
}

static __always_inline int write_outer_ipv6(struct __sk_buff *skb, const struct petrel_real *real,
					    const struct petrel_config *cfg, __u32 inner_len, __u8 tos, __u32 hash,
					    int inner_v6)
{
	struct ipv6hdr outer = {};

	outer.version = 6;
	outer.priority = tos >> 4;
	outer.flow_lbl[0] = ((tos & 0x0f) << 4) | ((hash >> 16) & 0x0f);
	outer.flow_lbl[1] = (hash >> 8) & 0xff;
	outer.flow_lbl[2] = hash & 0xff;
	outer.payload_len = bpf_htons(inner_len);
	outer.nexthdr = inner_v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	outer.hop_limit = OUTER_TTL;
	outer.saddr.in6_u.u6_addr32[0] = cfg->encap_src_v6_be[0];
	outer.saddr.in6_u.u6_addr32[1] = cfg->encap_src_v6_be[1];
	outer.saddr.in6_u.u6_addr32[3] = bpf_htonl(hash);
	__builtin_memcpy(&outer.daddr, real->addr_be, 16);
	return bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0);
}

/* Returns PETREL_HEALTH_ENCAPSULATED or the drop reason. */
static __always_inline int forward_probe(struct __sk_buff *skb, __u32 mark)
{
	const struct petrel_real *real = bpf_map_lookup_elem(&health_targets, &mark);
	const struct petrel_config *cfg;
	struct ethhdr eth = {};
	__u32 zero = 0, inner_len, outer_len, hash;
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
	int inner_v6, outer_v6;
	__u8 tos;

	if (!real || real->family == 0)
		return PETREL_HEALTH_DROP_NO_TARGET;
	cfg = bpf_map_lookup_elem(&health_config, &zero);
	if (!cfg || cfg->mtu == 0)
		return PETREL_HEALTH_DROP_NO_CONFIG;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		inner_v6 = 1;
	else if (skb->protocol == bpf_htons(ETH_P_IP))
		inner_v6 = 0;
	else
		return PETREL_HEALTH_DROP_NOT_IP;
	outer_v6 = real->family == PETREL_FAMILY_IPV6;
	if (inner_v6 && !outer_v6)
		return PETREL_HEALTH_DROP_FAMILY;

	outer_len = outer_v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	inner_len = skb->len - ETH_HLEN;
	if (outer_len + inner_len > cfg->mtu)
		return PETREL_HEALTH_DROP_TOO_BIG;
	tos = inner_tos(skb, inner_v6);
	hash = bpf_get_hash_recalc(skb);

	flags |= outer_v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	if (bpf_skb_adjust_room(skb, outer_len, BPF_ADJ_ROOM_MAC, flags))
		return PETREL_HEALTH_DROP_ENCAP_FAILED;

	__builtin_memcpy(eth.h_dest, cfg->next_hop_mac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, cfg->interface_mac, ETH_ALEN);
	eth.h_proto = outer_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0))
		return PETREL_HEALTH_DROP_ENCAP_FAILED;
	if (outer_v6 ? write_outer_ipv6(skb, real, cfg, inner_len, tos, hash, inner_v6)
		     : write_outer_ipv4(skb, real, cfg, inner_len, tos, hash))
		return PETREL_HEALTH_DROP_ENCAP_FAILED;
	return PETREL_HEALTH_ENCAPSULATED;
}

SEC("tc")
int petrel_health_forward(struct __sk_buff *skb)
{
	__u32 mark = skb->mark;
	int reason;

	/* UNSPEC, not OK: other tc filters on the interface still see the packet. */
	if ((mark & PETREL_HEALTH_MARK_MASK) != PETREL_HEALTH_MARK_TAG)
		return TC_ACT_UNSPEC;
	count_health(PETREL_HEALTH_RX);
	reason = forward_probe(skb, mark);
	count_health(reason);
	/* A probe that cannot go to its real must not reach the VIP some other way. */
	return reason == PETREL_HEALTH_ENCAPSULATED ? TC_ACT_OK : TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
