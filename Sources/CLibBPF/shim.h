#pragma once
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>   /* a program's line info, for profiles */
#include <xdp/libxdp.h>
#include <linux/if_link.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sys/eventfd.h>  /* wakes the ring-buffer reader's thread */

