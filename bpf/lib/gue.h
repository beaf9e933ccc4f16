/* GUE (Generic UDP Encapsulation, variant 1) towards reals flagged
 * PETREL_REAL_GUE: the outer IP header is followed by a UDP header and then the
 * client's IP packet, unchanged. Where protocols 4/41 are filtered, or a real's
 * NIC spreads only UDP by ports, GUE still gets through and spreads. */
#ifndef PETREL_GUE_H
#define PETREL_GUE_H

#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"

/* RFC 8086 asks for a source port in the ephemeral range, varied per flow so
 * the real's RSS spreads flows; the high hash bits vary independently of the
 * low ones already in the outer source address. */
#define GUE_SOURCE_PORT_BASE 0xc000u
#define GUE_SOURCE_PORT_MASK 0x3fffu

static __always_inline int real_uses_gue(const struct petrel_real *real)
{
	return real->flags & PETREL_REAL_GUE;
}

/* Bytes GUE adds after the outer IP header. */
static __always_inline __u32 gue_extra_len(const struct petrel_real *real)
{
	return real_uses_gue(real) ? sizeof(struct udphdr) : 0;
}

/* The outer header's protocol: UDP for GUE, else the IP-in-IP protocol given. */
static __always_inline __u8 gue_outer_protocol(const struct petrel_real *real, __u8 ipip_protocol)
{
	return real_uses_gue(real) ? IPPROTO_UDP : ipip_protocol;
}

/* The UDP header after the outer IP header. Checksum 0: allowed for IPv4, and
 * for IPv6 tunnels by RFC 6935; the inner packet keeps its own checksums, and
 * Petrel's decap program strips the header without handing it to a socket. */
static __always_inline void write_gue_udp(struct udphdr *udp, __u32 inner_len, __be16 port_be, __u32 hash)
{
	udp->source = bpf_htons(GUE_SOURCE_PORT_BASE | ((hash >> 16) & GUE_SOURCE_PORT_MASK));
	udp->dest = port_be;
	udp->len = bpf_htons(sizeof(*udp) + inner_len);
	udp->check = 0;
}

#endif
