// SPDX-License-Identifier: GPL-2.0
/* The talk's fix: for options it does not own, ctx->optlen = 0 whenever the caller's
 * optlen is past the buffer BPF got (PAGE_SIZE, whatever the page size): the kernel's
 * answer then goes to the caller untouched. */
#include "common_sockopt.h"

static __always_inline int past_buffer(struct bpf_sockopt *ctx)
{
	return ctx->optlen > (__s32)((long)ctx->optval_end - (long)ctx->optval);
}

SEC("cgroup/getsockopt")
int get_resets_past_buffer(struct bpf_sockopt *ctx)
{
	if (is_private_option(ctx))
		return answer_private_option(ctx);
	if (past_buffer(ctx))
		SET_OPTLEN(ctx, 0);
	return 1;
}

SEC("cgroup/setsockopt")
int set_resets_past_buffer(struct bpf_sockopt *ctx)
{
	if (is_private_option(ctx)) {
		ctx->optlen = -1;
		return 1;
	}
	if (past_buffer(ctx))
		ctx->optlen = 0;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
