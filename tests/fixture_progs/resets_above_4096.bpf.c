// SPDX-License-Identifier: GPL-2.0
/* The workaround with PAGE_SIZE hard-coded as 4096, as upstream's selftests write it.
 * Right on 4K pages; on 16K pages it also gives up on optlens between 4097 and the page
 * size, which only matters for an option the program answers itself. */
#include "common_sockopt.h"

SEC("cgroup/getsockopt")
int get_resets_above_4096(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > 4096)
		SET_OPTLEN(ctx, 0);
	return 1;
}

SEC("cgroup/setsockopt")
int set_resets_above_4096(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > 4096)
		ctx->optlen = 0;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
