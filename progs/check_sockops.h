/* Shared by progs/check_sockops.bpf.c and guest/check_sockops.c: what the reference
 * header-option program and the read-only flags probe record, per side of the connection. */
#ifndef CHECK_SOCKOPS_H
#define CHECK_SOCKOPS_H

#include <linux/types.h>

enum { SIDE_PASSIVE, SIDE_ACTIVE, NR_SIDES };   /* passive: listener, request, accepted socket */
#define NR_OPS 32                              /* BPF_SOCK_OPS_* values seen so far are below this */
#define REFERENCE_MAGIC 0xC3C3                 /* kind 254 (RFC 6994), our reference's ExID */

struct reference_counts {
	__u64 len_calls;        /* HDR_OPT_LEN_CB */
	__u64 written_data;     /* our option stored on a segment with payload */
	__u64 parse_calls;      /* PARSE_HDR_OPT_CB */
	__u64 seen_data;        /* our option found on a received segment with payload */
};

/* The later writers of the same words, probed by our programs (bpf_setsockopt's answers, 1: not
 * called): TCP_BPF_SOCK_OPS_CB_FLAGS restores the flags another program cleared (restorer);
 * SK_BPF_CB_FLAGS set by one program, then by another, read back (cb_word_*). */
struct writers_record {
	int restore_ret[NR_SIDES];
	int word_a_ret, word_b_ret, word_get_ret;
	__u32 word_after;
};

struct probe_record {
	__u32 seen[NR_OPS];     /* how often each op reached the probe */
	__u32 flags[NR_OPS];    /* the socket's cb flags when the probe ran in that op (last time) */
};

#endif
