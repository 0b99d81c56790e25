/* Shared by the fixture programs: the names real programs use, nothing else. */
#ifndef FIXTURE_SOCKOPT_H
#define FIXTURE_SOCKOPT_H
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SOL_SOCKET 1
#define SOL_IP 0
#define SO_ORIGINAL_DST 80

/* volatile: clang merges adjacent s32 stores into one 64-bit store, which the verifier
 * rejects for this context */
#define SET_OPTLEN(ctx, n) (*(volatile __s32 *)&(ctx)->optlen = (n))
#define SET_RETVAL(ctx, n) (*(volatile __s32 *)&(ctx)->retval = (n))

#define SO_PRIVATE_OPT 9999       /* not in the battery: the program's own business */

static __always_inline int is_private_option(struct bpf_sockopt *ctx)
{
	return ctx->level == SOL_SOCKET && ctx->optname == SO_PRIVATE_OPT;
}

/* The program's own option: one byte, answered here (0: reject it) */
static __always_inline int answer_private_option(struct bpf_sockopt *ctx)
{
	__u8 *optval = ctx->optval;

	if (optval + 1 > (__u8 *)ctx->optval_end)
		return 0;
	*optval = 0x5a;
	SET_OPTLEN(ctx, 1);
	SET_RETVAL(ctx, 0);
	return 1;
}
#endif
