// SPDX-License-Identifier: GPL-2.0
/* A pattern from the field: "BPF cannot handle more", so clamp optlen to 4096. The
 * caller then gets at most 4096 bytes of a longer answer (iptables' table dump) on
 * every kernel. */
#include "common_sockopt.h"

SEC("cgroup/getsockopt")
int get_clamps_4096(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > 4096)
		SET_OPTLEN(ctx, 4096);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
