/* Passes every packet. Attached to the far end of a veth so that frames sent
 * there with XDP_TX are received (veth delivers them only to an XDP peer). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int petrel_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
