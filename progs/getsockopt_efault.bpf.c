// SPDX-License-Identifier: GPL-2.0
/* cgroup sockopt programs that only care about one private option, as in
 * "Cgroup-bpf production surprises": get_ignores_others leaves every other option
 * alone (returns 1, optlen untouched), which is what turns a kernel answer into
 * EFAULT when the caller's optlen exceeds PAGE_SIZE on kernels without the relief
 * fix. get_resets_optlen is the talk's workaround. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "getsockopt_efault.h"

#define SOL_SOCKET 1

/* The guest's page size, set by the driver before the load (4096, 16384, 65536...): the
 * threshold the relief fix and the workaround are about is the kernel's PAGE_SIZE. */
const volatile __u32 page_size = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} private_opt SEC(".maps");

/* Answer the private option from socket storage; 0 = reject (EPERM) if we cannot. */
static __always_inline int answer_private(struct bpf_sockopt *ctx)
{
	__u8 *optval = ctx->optval, *stored;

	stored = bpf_sk_storage_get(&private_opt, ctx->sk, NULL, 0);
	if (!stored || optval + 1 > (__u8 *)ctx->optval_end)
		return 0;
	*optval = *stored;
	/* volatile: clang would merge the two adjacent s32 stores into one 64-bit
	 * store, which the verifier rejects for this context. */
	*(volatile __s32 *)&ctx->optlen = 1;
	*(volatile __s32 *)&ctx->retval = 0;
	return 1;
}

static __always_inline int is_private(struct bpf_sockopt *ctx)
{
	return ctx->level == SOL_SOCKET && ctx->optname == SO_PRIVATE_OPT;
}

SEC("cgroup/getsockopt")
int get_ignores_others(struct bpf_sockopt *ctx)
{
	if (is_private(ctx))
		return answer_private(ctx);
	return 1;    /* let the kernel's answer through ... or so it seems */
}

SEC("cgroup/getsockopt")
int get_resets_optlen(struct bpf_sockopt *ctx)
{
	if (is_private(ctx))
		return answer_private(ctx);
	/* Only past PAGE_SIZE, so that later programs still see small buffers. */
	if (ctx->optlen > page_size)
		ctx->optlen = 0;
	return 1;
}

SEC("cgroup/setsockopt")
int set_ignores_others(struct bpf_sockopt *ctx)
{
	__u8 *optval = ctx->optval, *stored;

	if (!is_private(ctx))
		return 1;   /* optlen left as the caller gave it */
	if (optval + 1 > (__u8 *)ctx->optval_end)
		return 0;
	stored = bpf_sk_storage_get(&private_opt, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored)
		return 0;
	*stored = *optval;
	ctx->optlen = -1;   /* handled here: the kernel's own setsockopt is skipped */
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
