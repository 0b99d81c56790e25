// SPDX-License-Identifier: GPL-2.0
/* One cgroup getsockopt program for the hook's other paths (SCTP's bypassed options,
 * io_uring's SOCKET_URING_OP_GETSOCKOPT, the getsockopt_iter families): it counts the
 * calls it sees, per level and option, and otherwise leaves every answer alone the way
 * fleets' programs do (returns 1, optlen untouched), so that with optlen > PAGE_SIZE the
 * kernel's relief (or its EFAULT) decides what the caller gets. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "getsockopt_paths.h"

__u32 calls[PATHS_SLOTS];     /* per slot_of(level, optname) */
__u32 calls_total;
__s32 last_optlen;            /* ctx->optlen as the program saw it last */
__s32 last_retval;            /* the kernel handler's result as the program saw it last */

SEC("cgroup/getsockopt")
int count_and_ignore(struct bpf_sockopt *ctx)
{
	__u32 slot = slot_of(ctx->level, ctx->optname);

	if (slot < PATHS_SLOTS)
		__sync_fetch_and_add(&calls[slot], 1);
	__sync_fetch_and_add(&calls_total, 1);
	last_optlen = ctx->optlen;
	last_retval = ctx->retval;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
