// SPDX-License-Identifier: GPL-2.0
/* An SO_ORIGINAL_DST answerer, as transparent proxies run them: it answers
 * getsockopt(SOL_IP, SO_ORIGINAL_DST) with the destination from a map (configured with
 * --maps) and returns 1 for every other option, optlen untouched (EFAULT on kernels
 * without 29ebbba7d461). */
#include "common_sockopt.h"

struct sockaddr_in_ {
	__u16 sin_family;
	__u16 sin_port;
	__u32 sin_addr;
	__u8 zero[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);      /* address (network order) in the low 32 bits, port in the next 16 */
} original_dst SEC(".maps");

SEC("cgroup/getsockopt")
int get_original_dst(struct bpf_sockopt *ctx)
{
	struct sockaddr_in_ *sin = ctx->optval;
	__u32 zero = 0;
	__u64 *dst;

	if (ctx->level != SOL_IP || ctx->optname != SO_ORIGINAL_DST)
		return 1;
	dst = bpf_map_lookup_elem(&original_dst, &zero);
	if (!dst || (void *)(sin + 1) > ctx->optval_end)
		return 1;
	sin->sin_family = 2;       /* AF_INET */
	sin->sin_addr = (__u32)*dst;
	sin->sin_port = (__u16)(*dst >> 32);
	__builtin_memset(sin->zero, 0, sizeof(sin->zero));
	SET_OPTLEN(ctx, sizeof(*sin));
	SET_RETVAL(ctx, 0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
