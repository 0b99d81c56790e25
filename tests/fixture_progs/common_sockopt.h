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
#endif
