/* The clock of the per-second limits (the SYN-flood guard, the ICMP answers). */
#ifndef PETREL_CLOCK_H
#define PETREL_CLOCK_H

#include <bpf/bpf_helpers.h>
#include "maps.h"

/* Whether a second has passed since *window_start; if so, a new window starts now.
 * The clock is the kernel's tick count (jiffies), which the verifier turns into
 * one load, where a clock helper is a call; load_settings.ticks_per_second of
 * them make a second. A tick's precision is plenty for a one-second window. */
static __always_inline int second_passed(__u64 *window_start)
{
	__u64 now = bpf_jiffies64();

	if (now - *window_start < load_settings.ticks_per_second)
		return 0;
	*window_start = now;
	return 1;
}

#endif
