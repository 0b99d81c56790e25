// SPDX-License-Identifier: GPL-2.0
/* The talk's prog_a by itself: an option on every segment; nothing to silence it. */
#include "common_sockops.h"

SEC("sockops")
int prog_a(struct bpf_sock_ops *skops)
{
	return option_everywhere(skops, MAGIC_A);
}

char LICENSE[] SEC("license") = "GPL";
