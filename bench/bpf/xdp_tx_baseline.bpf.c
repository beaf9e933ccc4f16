/* The benchmark's baseline: does nothing but send the packet back (XDP_TX), so
 * Petrel's cost per packet can be read as a ratio to the cheapest forwarder. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int petrel_baseline_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
