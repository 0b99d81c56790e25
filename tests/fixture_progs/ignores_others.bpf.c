// SPDX-License-Identifier: GPL-2.0
/* The talk's program: it cares about one private option and returns 1 for every other
 * one, optlen untouched. That is what turns the kernel's answer into EFAULT when the
 * caller's optlen exceeds PAGE_SIZE on kernels without 29ebbba7d461. */
#include "common_sockopt.h"

SEC("cgroup/getsockopt")
int get_ignores_others(struct bpf_sockopt *ctx)
{
	if (!is_private_option(ctx))
		return 1;
	return answer_private_option(ctx);
}

SEC("cgroup/setsockopt")
int set_ignores_others(struct bpf_sockopt *ctx)
{
	if (!is_private_option(ctx))
		return 1;
	ctx->optlen = -1;          /* handled here: the kernel's own setsockopt is skipped */
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
