// SPDX-License-Identifier: GPL-2.0
/* A hook that chains politely: it leaves a kernel error alone (bpf_get_retval(), v5.18)
 * and the kernel's answer past the buffer BPF got. Needs bpf_get_retval: a kernel without
 * it refuses the load, which check-progs reports with the verifier's words (exit 2). */
#include "common_sockopt.h"

SEC("cgroup/getsockopt")
int get_chains_politely(struct bpf_sockopt *ctx)
{
	if (bpf_get_retval() < 0 || ctx->optlen > (__s32)((long)ctx->optval_end - (long)ctx->optval))
		SET_OPTLEN(ctx, 0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
