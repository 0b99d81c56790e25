// SPDX-License-Identifier: GPL-2.0
/* The talk's program: it cares about one private option and returns 1 for every other
 * one, optlen untouched. That is what turns the kernel's answer into EFAULT when the
 * caller's optlen exceeds PAGE_SIZE on kernels without 29ebbba7d461. */
#include "common_sockopt.h"

#define SO_PRIVATE_OPT 9999       /* not in the battery: the program's own business */

SEC("cgroup/getsockopt")
int get_ignores_others(struct bpf_sockopt *ctx)
{
	__u8 *optval = ctx->optval;

	if (ctx->level != SOL_SOCKET || ctx->optname != SO_PRIVATE_OPT)
		return 1;
	if (optval + 1 > (__u8 *)ctx->optval_end)
		return 0;
	*optval = 0x5a;
	SET_OPTLEN(ctx, 1);
	SET_RETVAL(ctx, 0);
	return 1;
}

SEC("cgroup/setsockopt")
int set_ignores_others(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_SOCKET || ctx->optname != SO_PRIVATE_OPT)
		return 1;
	ctx->optlen = -1;          /* handled here: the kernel's own setsockopt is skipped */
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
