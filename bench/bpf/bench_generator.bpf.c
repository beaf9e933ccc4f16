/* Benchmark only (petrel-bench): the packet generator. Run with
 * BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES, every XDP_TX really leaves
 * through the interface given as ingress_ifindex (a veth whose peer runs the
 * balancer). The kernel recycles the frames without resetting their bytes, and
 * the balancer rewrites them in place, so every frame is written whole from the
 * template; the source address then varies so each CPU sends many flows. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/csum.h"

#define BENCH_FRAME_LEN 64

/* Layout shared with bench/Sources/PetrelBench/LiveBench.swift (72 bytes). */
struct bench_generator_config {
	__u8  frame[BENCH_FRAME_LEN]; /* Ethernet + IPv4 + TCP/UDP, exactly BENCH_FRAME_LEN bytes */
	__u32 flows_per_cpu;          /* distinct source addresses each CPU cycles through */
	__u32 source_base;            /* host order; the source is base + cpu << 16 + flow */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_generator_config);
} generator_config SEC(".maps");

/* Frames written, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} generator_sent SEC(".maps");

SEC("xdp")
int petrel_bench_generator(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct bench_generator_config *cfg;
	__u32 zero = 0, flow, source;
	struct iphdr *ip;
	__u64 *sent;

	cfg = bpf_map_lookup_elem(&generator_config, &zero);
	sent = bpf_map_lookup_elem(&generator_sent, &zero);
	if (!cfg || !sent || cfg->flows_per_cpu == 0)
		return XDP_ABORTED;
	if (data + BENCH_FRAME_LEN > end)
		return XDP_ABORTED;

	__builtin_memcpy(data, cfg->frame, BENCH_FRAME_LEN);
	flow = (__u32)(*sent % cfg->flows_per_cpu);
	*sent += 1;
	source = cfg->source_base + (bpf_get_smp_processor_id() << 16) + flow;

	ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	ip->saddr = bpf_htonl(source);
	ip->check = 0;
	ip->check = ipv4_header_checksum(ip);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
