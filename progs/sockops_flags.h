/* Shared by progs/sockops_flags.bpf.c and guest/sockops_flags.c: bpftool 7.1's
 * skeleton names the counters' struct type but does not define it.
 */
#ifndef SOCKOPS_FLAGS_H
#define SOCKOPS_FLAGS_H

#include <linux/types.h>

enum { PROG_A, PROG_B, NR_PROGS };		/* the _storage variants count as A and B */
enum { PASSIVE, ACTIVE, NR_ROLES };		/* PASSIVE: listener, request and accepted socket */

#define NO_FLAGS_READ	0xffffffffu		/* set by the driver: "this prog never looked" */

struct sockops_counts {
	__u64 hdr_opt_len;		/* HDR_OPT_LEN_CB for a segment about to be sent */
	__u64 hdr_opt_len_mss;		/* HDR_OPT_LEN_CB from tcp_current_mss(): no segment */
	__u64 write_hdr_opt;		/* WRITE_HDR_OPT_CB */
	__u64 written;			/* options this prog stored */
	__u64 written_data;		/* ... in segments carrying payload */
	__u64 parse_hdr_opt;		/* PARSE_HDR_OPT_CB (only prog_a asks for it) */
	__u64 seen_a, seen_a_data;	/* option A in a received segment (PARSE_HDR_OPT_CB) */
	__u64 seen_b, seen_b_data;
	__u64 seen_a_handshake;		/* option A in the SYN-ACK / final ACK (*_ESTABLISHED_CB) */
	__u64 seen_b_handshake;
	__u64 skipped;			/* workaround: callbacks returned early because of the bool */
	__u32 flags_at_established;	/* cb flags on entry to *_ESTABLISHED_CB */
	__u32 flags_after_established;	/* ... after this prog's own change, if any */
	__u32 last_flags;		/* cb flags in this prog's latest callback */
	__u32 rejected_flags;		/* bits bpf_sock_ops_cb_flags_set() did not support */
};

#endif
