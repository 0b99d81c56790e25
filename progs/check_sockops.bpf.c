// SPDX-License-Identifier: GPL-2.0
/* check-progs' own sockops programs, attached beside the user's on one cgroup:
 *
 * reference  stands for "another team's header-option program": it turns on WRITE_HDR_OPT and
 *            PARSE_UNKNOWN_HDR_OPT at TCP_LISTEN/TCP_CONNECT (keeping the flags already set),
 *            reserves and writes a 4-byte experimental option (kind 254, REFERENCE_MAGIC) on
 *            every segment, and counts the data segments it wrote on and the ones it parsed.
 * probe      read-only: attached last, it records the socket's callback flags as they are after
 *            the other programs ran, per op and side. It sets nothing.
 * restorer   attached after a user's program: at ESTABLISHED it sets the reference's flags back
 *            with bpf_setsockopt(SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS) (3882dccf48f9, v6.12).
 * cb_word_a, cb_word_b  two programs writing SK_BPF_CB_FLAGS (the timestamping word, 24e82b7c045b):
 *            a asks for TX timestamping, b then writes its own 0; the word is read back.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "check_sockops.h"

#define TCPOPT_EXP	254
#define OPT_LEN		4
#define REFERENCE_FLAGS	(BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG)

const volatile __u16 server_port;       /* tells the passive side from the active one */
struct reference_counts reference_seen[NR_SIDES];
struct probe_record probe_seen[NR_SIDES];
struct writers_record writers = { .restore_ret = { 1, 1 }, .word_a_ret = 1, .word_b_ret = 1, .word_get_ret = 1 };

/* uapi values newer than the build root's headers (read in Debian 6.12.117's and 7.3.4's BTF) */
#define SOL_SOCKET			1
#define SOL_TCP				6
#define TCP_BPF_SOCK_OPS_CB_FLAGS	1008
#define SK_BPF_CB_FLAGS			1009
#define SK_BPF_CB_TX_TIMESTAMPING	1

static __always_inline int side_of(struct bpf_sock_ops *skops)
{
	if (skops->local_port == server_port)
		return SIDE_PASSIVE;
	if (bpf_ntohl(skops->remote_port) == server_port)
		return SIDE_ACTIVE;
	return -1;
}

/* WRITE_HDR_OPT_CB and PARSE_HDR_OPT_CB only: skb_data is the TCP header */
static __always_inline int has_payload(struct bpf_sock_ops *skops)
{
	__u8 *th = (void *)(long)skops->skb_data;
	__u8 *end = (void *)(long)skops->skb_data_end;

	if (th + 13 > end)
		return 0;
	return skops->skb_len > (__u32)(th[12] >> 4) * 4;
}

SEC("sockops")
int reference(struct bpf_sock_ops *skops)
{
	__u8 opt[OPT_LEN] = { TCPOPT_EXP, OPT_LEN, REFERENCE_MAGIC >> 8, REFERENCE_MAGIC & 0xff };
	int side = side_of(skops);
	struct reference_counts *c;

	if (side < 0)
		return 1;
	c = &reference_seen[side];
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | REFERENCE_FLAGS);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		c->len_calls++;
		bpf_reserve_hdr_opt(skops, OPT_LEN, 0);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		if (bpf_store_hdr_opt(skops, opt, sizeof(opt), 0) == 0)
			c->written_data += has_payload(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		c->parse_calls++;
		if (bpf_load_hdr_opt(skops, opt, sizeof(opt), 0) > 0)
			c->seen_data += has_payload(skops);
		break;
	}
	return 1;
}

SEC("sockops")
int probe(struct bpf_sock_ops *skops)
{
	int side = side_of(skops);
	__u32 op = skops->op;

	if (side < 0 || op >= NR_OPS)
		return 1;
	probe_seen[side].seen[op]++;
	probe_seen[side].flags[op] = skops->bpf_sock_ops_cb_flags;
	return 1;
}

SEC("sockops")
int restorer(struct bpf_sock_ops *skops)
{
	int side = side_of(skops), want;

	if (side < 0 || (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
			 skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB))
		return 1;
	want = skops->bpf_sock_ops_cb_flags | REFERENCE_FLAGS;
	writers.restore_ret[side] = bpf_setsockopt(skops, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &want, sizeof(want));
	return 1;
}

SEC("sockops")
int cb_word_a(struct bpf_sock_ops *skops)
{
	int want = SK_BPF_CB_TX_TIMESTAMPING;

	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		writers.word_a_ret = bpf_setsockopt(skops, SOL_SOCKET, SK_BPF_CB_FLAGS, &want, sizeof(want));
	return 1;
}

SEC("sockops")
int cb_word_b(struct bpf_sock_ops *skops)
{
	int mine = 0, now = -1;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	writers.word_b_ret = bpf_setsockopt(skops, SOL_SOCKET, SK_BPF_CB_FLAGS, &mine, sizeof(mine));
	writers.word_get_ret = bpf_getsockopt(skops, SOL_SOCKET, SK_BPF_CB_FLAGS, &now, sizeof(now));
	writers.word_after = now;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
