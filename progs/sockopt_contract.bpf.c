// SPDX-License-Identifier: GPL-2.0
/* The cgroup sockopt contract (Documentation/bpf/prog_cgroup_sockopt.rst), one small
 * program per rule. Every program acts on IP_TOS (or the option it names) and leaves
 * everything else alone; note() records that it ran, in which order, and what it saw, so
 * the driver can tell which programs of a chain ran and what each one was handed. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SOL_SOCKET 1
#define SOL_IP 0
#define IP_TOS 1
#define SO_PEERGROUPS 59
#define SO_NOBODY_HANDLES 9877       /* no protocol answers it: the kernel says ENOPROTOOPT */
#define MAX_RUNS 16

enum { GET_REJECT, SET_REJECT, SET_SKIP_KERNEL, SET_A, SET_B, GET_A, GET_B, SET_RAISE, GET_RAISE,
       GET_SET_RETVAL, GET_ANSWER_UNKNOWN, SET_LARGE, GET_LARGE, GET_PASS, NR_PROGS };

/* Written by the driver before it triggers a program. */
int rewrite_value;       /* SET_B / GET_B write it, SET_LARGE / GET_LARGE scribble it */
int raise_by;            /* SET_RAISE / GET_RAISE add it to optlen */
int new_retval;          /* GET_SET_RETVAL stores it in ctx->retval */
int large_optlen;        /* SET_LARGE / GET_LARGE set optlen to it; -2: leave optlen alone */

/* Read by the driver. */
__u32 runs[NR_PROGS];
__u32 order[MAX_RUNS];
__u32 order_len;
int seen_value[NR_PROGS];    /* the first int of optval as the program found it (-1: none) */
int seen_optlen[NR_PROGS];

static __always_inline int first_int(struct bpf_sockopt *ctx, int *value)
{
	int *optval = ctx->optval;

	if ((void *)(optval + 1) > ctx->optval_end)
		return 0;
	*value = *optval;
	return 1;
}

static __always_inline void put_first_int(struct bpf_sockopt *ctx, int value)
{
	int *optval = ctx->optval;

	if ((void *)(optval + 1) <= ctx->optval_end)
		*optval = value;
}

/* volatile: clang merges adjacent s32 context stores into one 64-bit store, which the
 * verifier rejects for this context. */
static __always_inline void set_optlen(struct bpf_sockopt *ctx, int optlen)
{
	*(volatile __s32 *)&ctx->optlen = optlen;
}

static __always_inline void note(struct bpf_sockopt *ctx, __u32 id)
{
	__u32 i = order_len;
	int value = -1;

	if (id >= NR_PROGS)
		return;
	runs[id]++;
	if (i < MAX_RUNS)
		order[i] = id;
	order_len = i + 1;
	first_int(ctx, &value);
	seen_value[id] = value;
	seen_optlen[id] = ctx->optlen;
}

static __always_inline int is_tos(struct bpf_sockopt *ctx)
{
	return ctx->level == SOL_IP && ctx->optname == IP_TOS;
}

SEC("cgroup/getsockopt")
int get_reject(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx) && ctx->optname != SO_NOBODY_HANDLES)
		return 1;
	note(ctx, GET_REJECT);
	return 0;
}

SEC("cgroup/setsockopt")
int set_reject(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, SET_REJECT);
	return 0;
}

SEC("cgroup/setsockopt")
int set_skip_kernel(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, SET_SKIP_KERNEL);
	set_optlen(ctx, -1);
	return 1;
}

/* A: an observer (a parent cgroup's program); B: rewrites the value (a child's). */
SEC("cgroup/setsockopt")
int set_a(struct bpf_sockopt *ctx)
{
	if (is_tos(ctx))
		note(ctx, SET_A);
	return 1;
}

SEC("cgroup/setsockopt")
int set_b(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, SET_B);
	put_first_int(ctx, rewrite_value);
	return 1;
}

SEC("cgroup/getsockopt")
int get_a(struct bpf_sockopt *ctx)
{
	if (is_tos(ctx))
		note(ctx, GET_A);
	return 1;
}

SEC("cgroup/getsockopt")
int get_b(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, GET_B);
	put_first_int(ctx, rewrite_value);
	return 1;
}

SEC("cgroup/setsockopt")
int set_raise(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, SET_RAISE);
	set_optlen(ctx, ctx->optlen + raise_by);
	return 1;
}

SEC("cgroup/getsockopt")
int get_raise(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, GET_RAISE);
	set_optlen(ctx, ctx->optlen + raise_by);
	return 1;
}

SEC("cgroup/getsockopt")
int get_set_retval(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, GET_SET_RETVAL);
	ctx->retval = new_retval;
	return 1;
}

/* Answers the option the kernel does not know: its value, optlen 4 and retval 0. */
SEC("cgroup/getsockopt")
int get_answer_unknown(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_SOCKET || ctx->optname != SO_NOBODY_HANDLES)
		return 1;
	note(ctx, GET_ANSWER_UNKNOWN);
	put_first_int(ctx, rewrite_value);
	set_optlen(ctx, 4);
	*(volatile __s32 *)&ctx->retval = 0;
	return 1;
}

SEC("cgroup/setsockopt")
int set_large(struct bpf_sockopt *ctx)
{
	if (!is_tos(ctx))
		return 1;
	note(ctx, SET_LARGE);
	put_first_int(ctx, rewrite_value);
	if (large_optlen != -2)
		set_optlen(ctx, large_optlen);
	return 1;
}

SEC("cgroup/getsockopt")
int get_large(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_SOCKET || ctx->optname != SO_PEERGROUPS)
		return 1;
	note(ctx, GET_LARGE);
	put_first_int(ctx, rewrite_value);
	if (large_optlen != -2)
		set_optlen(ctx, large_optlen);
	return 1;
}

/* Does nothing: attaching it is what the race case needs. */
SEC("cgroup/getsockopt")
int get_pass(struct bpf_sockopt *ctx)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
