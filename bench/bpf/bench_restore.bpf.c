/* Benchmark only (petrel-bench). BPF_PROG_TEST_RUN with repeat > 1 runs a
 * program again and again on the buffer it already changed, so from the second
 * run on the balancer would see its own IP-in-IP or GUE output (a non-VIP packet:
 * cheap and wrong). This wrapper undoes the encapsulation first, then
 * tail-calls the program under test, so every run sees the original packet.
 *
 * The harness times the wrapper in front of a do-nothing program too and
 * subtracts that; petrel_bench_push re-encapsulates a packet so that the cost
 * of the restore itself can be estimated. Neither is ever attached. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/csum.h"
#include "petrel_abi.h"

/* Layout shared with bench/Sources/PetrelBench/RestoreWrapper.swift (24 bytes). */
struct bench_restore_config {
	__u8   eth_dest[6];          /* written back over the balancer's MACs */
	__u8   eth_source[6];
	__be32 encap_prefix_v4_be;   /* the balancer's outer IPv4 source: high 16 bits matter */
	__be32 encap_prefix_v6_be[2];/* the balancer's outer IPv6 source: high 64 bits */
};

enum bench_restore_stat {
	BENCH_RESTORED_V4_OUTER = 0, /* an outer IPv4 header was removed */
	BENCH_RESTORED_V6_OUTER,     /* an outer IPv6 header was removed */
	BENCH_UNTOUCHED,             /* not the balancer's output: run as it is */
	BENCH_RESTORE_FAILED,        /* looked like ours but could not be undone */
	BENCH_TAIL_CALL_FAILED,      /* no program in the target slot */
	BENCH_RESTORE_STAT_COUNT
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_restore_config);
} restore_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BENCH_RESTORE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} restore_stats SEC(".maps");

/* Slot 0: the program under test (the balancer, or a do-nothing program). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} restore_target SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *counter = bpf_map_lookup_elem(&restore_stats, &what);

	if (counter)
		*counter += 1;
}

/* For GUE output (UDP to the default GUE port after the outer header at udp):
 * the length of the UDP header, with *inner_type from the inner packet's
 * version nibble; 0 if it is not GUE. */
static __always_inline __u32 gue_header_len(void *udp_start, void *end, __be16 *inner_type)
{
	struct udphdr *udp = udp_start;
	__u8 *version = (void *)(udp + 1);

	if ((void *)(version + 1) > end || udp->dest != bpf_htons(PETREL_GUE_DEFAULT_PORT))
		return 0;
	*inner_type = *version >> 4 == 6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	return sizeof(*udp);
}

/* Length of the outer header the balancer pushed, or 0 if the frame is not its
 * output; *inner_type is then the Ethernet type of the inner packet. */
static __always_inline __u32 pushed_header_len(void *data, void *end, const struct bench_restore_config *cfg,
					       __be16 *inner_type, __u32 *stat)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *outer = (void *)(eth + 1);

		__u32 gue_len = 0;

		if ((void *)(outer + 1) > end || outer->ihl != 5)
			return 0;
		if (outer->protocol == IPPROTO_UDP) {
			gue_len = gue_header_len(outer + 1, end, inner_type);
			if (!gue_len)
				return 0;
		} else if (outer->protocol == IPPROTO_IPIP) {
			*inner_type = bpf_htons(ETH_P_IP);
		} else {
			return 0;
		}
		if ((outer->saddr ^ cfg->encap_prefix_v4_be) & bpf_htonl(0xffff0000u))
			return 0;
		*stat = BENCH_RESTORED_V4_OUTER;
		return sizeof(*outer) + gue_len;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *outer = (void *)(eth + 1);

		if ((void *)(outer + 1) > end)
			return 0;
		__u32 gue_len = 0;

		if (outer->nexthdr == IPPROTO_UDP) {
			gue_len = gue_header_len(outer + 1, end, inner_type);
			if (!gue_len)
				return 0;
		} else if (outer->nexthdr == IPPROTO_IPV6 || outer->nexthdr == IPPROTO_IPIP) {
			*inner_type = outer->nexthdr == IPPROTO_IPV6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
		} else {
			return 0;
		}
		if (outer->saddr.in6_u.u6_addr32[0] != cfg->encap_prefix_v6_be[0] ||
		    outer->saddr.in6_u.u6_addr32[1] != cfg->encap_prefix_v6_be[1])
			return 0;
		*stat = BENCH_RESTORED_V6_OUTER;
		return sizeof(*outer) + gue_len;
	}
	return 0;
}

static __always_inline void restore(struct xdp_md *ctx, const struct bench_restore_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__be16 inner_type = 0;
	__u32 stat = BENCH_UNTOUCHED;
	__u32 len = pushed_header_len(data, end, cfg, &inner_type, &stat);
	struct ethhdr *eth;

	if (len == 0) {
		count(BENCH_UNTOUCHED);
		return;
	}
	if (bpf_xdp_adjust_head(ctx, (int)len)) {
		count(BENCH_RESTORE_FAILED);
		return;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end) {
		count(BENCH_RESTORE_FAILED);
		return;
	}
	__builtin_memcpy(eth->h_dest, cfg->eth_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->eth_source, ETH_ALEN);
	eth->h_proto = inner_type;
	count(stat);
}

SEC("xdp")
int petrel_bench_restore(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_restore_config *cfg = bpf_map_lookup_elem(&restore_config, &zero);

	if (cfg)
		restore(ctx, cfg);
	bpf_tail_call(ctx, &restore_target, 0);
	count(BENCH_TAIL_CALL_FAILED);
	return XDP_ABORTED;
}

/* Pushes an outer IPv4 header with the balancer's source prefix in front of an
 * IPv4 packet, as a 4in4 encapsulation would: tail-called from the wrapper, it
 * makes the wrapper restore on every run, which prices the restore. */
SEC("xdp")
int petrel_bench_push(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_restore_config *cfg = bpf_map_lookup_elem(&restore_config, &zero);
	struct ethhdr *eth;
	struct iphdr *outer;
	void *data, *end;

	if (!cfg)
		return XDP_ABORTED;
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, cfg->eth_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->eth_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons((__u16)(end - (void *)outer));
	outer->id = 0;
	outer->frag_off = 0;
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = cfg->encap_prefix_v4_be;
	outer->daddr = cfg->encap_prefix_v4_be;
	outer->check = ipv4_header_checksum(outer);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
