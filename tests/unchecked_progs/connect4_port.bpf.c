// SPDX-License-Identifier: GPL-2.0
/* A connect-time policy (cgroup/connect4): a kind of program check-progs does not check yet;
 * it must say so, never "clean". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/connect4")
int refuse_port_25(struct bpf_sock_addr *ctx)
{
	return ctx->user_port != __builtin_bswap16(25);
}

char LICENSE[] SEC("license") = "GPL";
