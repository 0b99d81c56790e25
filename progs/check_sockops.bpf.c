// SPDX-License-Identifier: GPL-2.0
/* check-progs' own sockops programs, attached beside the user's on one cgroup:
 *
 * reference  stands for "another team's header-option program": it turns on WRITE_HDR_OPT and
 *            PARSE_UNKNOWN_HDR_OPT at TCP_LISTEN/TCP_CONNECT (keeping the flags already set),
 *            reserves and writes a 4-byte experimental option (kind 254, REFERENCE_MAGIC) on
 *            every segment, and counts the data segments it wrote on and the ones it parsed.
 * probe      read-only: attached last, it records the socket's callback flags as they are after
 *            the other programs ran, per op and side. It sets nothing.
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

char LICENSE[] SEC("license") = "GPL";
