// SPDX-License-Identifier: GPL-2.0
/* Two sockops programs sharing one per-socket tcp_sock->bpf_sock_ops_cb_flags.
 *
 * prog_a wants header-option callbacks for the life of every connection: it writes
 * option A (kind 254, magic MAGIC_A) on every segment and, as the observer, counts the
 * options it finds on received segments.  prog_b only wants them during the handshake
 * (it writes option B in the SYN-ACK), so it clears BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
 * once the passive socket is established - which also silences prog_a, because the
 * flags are one field per socket, not one per program.
 *
 * prog_a_storage / prog_b_storage are the workaround: each keeps "do I still want
 * header-option callbacks on this socket?" in its own bpf_sk_storage and returns early
 * when not, and neither ever clears a flag.
 *
 * Everything observed lands in counts[prog][role]; the driver snapshots it after the
 * handshake and after the data exchange and reports the differences.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sockops_flags.h"

#define TCPOPT_EXP	254	/* RFC 6994 experimental option: kind, length, 16-bit magic */
#define OPT_LEN		4
#define MAGIC_A		0xA1A1
#define MAGIC_B		0xB2B2

#define TCPHDR_SYN	0x02
#define TCPHDR_ACK	0x10

#define HDR_OPT_FLAGS_A	(BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG)
#define HDR_OPT_FLAGS_B	BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG

struct sockops_counts counts[NR_PROGS][NR_ROLES];
const volatile __u16 server_port;	/* tells the passive sockets from the active one */

struct hdr_cb_state {
	__u8 want_hdr_cb;
};

/* One map per program: each owns its bool.  BPF_F_CLONE hands the listener's value to
 * the accepted socket, which is how the passive child inherits the listener's intent
 * just as it inherits the listener's cb flags.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct hdr_cb_state);
} a_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct hdr_cb_state);
} b_state SEC(".maps");

static __always_inline struct sockops_counts *counts_for(int prog, struct bpf_sock_ops *skops)
{
	if (skops->local_port == server_port)
		return &counts[prog][PASSIVE];
	if (bpf_ntohl(skops->remote_port) == server_port)
		return &counts[prog][ACTIVE];
	return 0;
}

static __always_inline int find_option(struct bpf_sock_ops *skops, __u16 magic)
{
	__u8 opt[OPT_LEN] = { TCPOPT_EXP, OPT_LEN, magic >> 8, magic & 0xff };

	return bpf_load_hdr_opt(skops, opt, sizeof(opt), 0) > 0;
}

static __always_inline int store_option(struct bpf_sock_ops *skops, __u16 magic)
{
	__u8 opt[OPT_LEN] = { TCPOPT_EXP, OPT_LEN, magic >> 8, magic & 0xff };

	return bpf_store_hdr_opt(skops, opt, sizeof(opt), 0) == 0;
}

/* Only for WRITE_HDR_OPT_CB and PARSE_HDR_OPT_CB, where skb_data is the TCP header and
 * skb_len counts header + payload.  Pure ACKs vary with delayed-ACK timing; data
 * segments are what the driver sends, so they are the deterministic count.
 */
static __always_inline int has_payload(struct bpf_sock_ops *skops)
{
	__u8 *th = (void *)(long)skops->skb_data;
	__u8 *end = (void *)(long)skops->skb_data_end;

	if (th + 13 > end)
		return 0;
	return skops->skb_len > (__u32)(th[12] >> 4) * 4;	/* data offset: byte 12, high nibble */
}

static __always_inline int is_synack(struct bpf_sock_ops *skops)
{
	return (skops->skb_tcp_flags & (TCPHDR_SYN | TCPHDR_ACK)) == (TCPHDR_SYN | TCPHDR_ACK);
}

static __always_inline void set_want(void *map, struct bpf_sock_ops *skops, __u8 want)
{
	struct bpf_sock *sk = skops->sk;
	struct hdr_cb_state *state;

	if (!sk)
		return;
	state = bpf_sk_storage_get(map, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (state)
		state->want_hdr_cb = want;
}

static __always_inline int wants(void *map, struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct hdr_cb_state *state;

	/* A request socket (SYN-ACK) has no storage; the listener asked for it. */
	if (!skops->is_fullsock)
		return 1;
	if (!sk)
		return 0;
	state = bpf_sk_storage_get(map, sk, 0, 0);
	return state && state->want_hdr_cb;
}

static __always_inline void turn_on(struct bpf_sock_ops *skops, struct sockops_counts *c, __u32 flags)
{
	c->rejected_flags = bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | flags);
}

static __always_inline int handle_a(struct bpf_sock_ops *skops, int use_storage)
{
	struct sockops_counts *c = counts_for(PROG_A, skops);

	if (!c)
		return 1;
	c->last_flags = skops->bpf_sock_ops_cb_flags;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		turn_on(skops, c, HDR_OPT_FLAGS_A);
		if (use_storage)
			set_want(&a_state, skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		/* prog_a keeps the flag it set at LISTEN/CONNECT, as the talk's prog_a does:
		 * nothing to change.  (Setting it again here would hide the clobbering only
		 * when prog_a happens to run after prog_b.)
		 */
		c->flags_at_established = skops->bpf_sock_ops_cb_flags;
		c->flags_after_established = skops->bpf_sock_ops_cb_flags;
		/* skb is the SYN-ACK (active) or the final ACK (passive) of the handshake */
		c->seen_a_handshake += find_option(skops, MAGIC_A);
		c->seen_b_handshake += find_option(skops, MAGIC_B);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		if (use_storage && !wants(&a_state, skops)) {
			c->skipped++;
			break;
		}
		if (skops->args[0] == BPF_WRITE_HDR_TCP_CURRENT_MSS)
			c->hdr_opt_len_mss++;
		else
			c->hdr_opt_len++;
		bpf_reserve_hdr_opt(skops, OPT_LEN, 0);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		if (use_storage && !wants(&a_state, skops)) {
			c->skipped++;
			break;
		}
		c->write_hdr_opt++;
		if (store_option(skops, MAGIC_A)) {
			c->written++;
			c->written_data += has_payload(skops);
		}
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		if (use_storage && !wants(&a_state, skops)) {
			c->skipped++;
			break;
		}
		c->parse_hdr_opt++;
		if (find_option(skops, MAGIC_A)) {
			c->seen_a++;
			c->seen_a_data += has_payload(skops);
		}
		if (find_option(skops, MAGIC_B)) {
			c->seen_b++;
			c->seen_b_data += has_payload(skops);
		}
		break;
	}
	return 1;
}

static __always_inline int handle_b(struct bpf_sock_ops *skops, int use_storage)
{
	struct sockops_counts *c = counts_for(PROG_B, skops);

	if (!c)
		return 1;
	c->last_flags = skops->bpf_sock_ops_cb_flags;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		turn_on(skops, c, HDR_OPT_FLAGS_B);
		if (use_storage)
			set_want(&b_state, skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		c->flags_at_established = skops->bpf_sock_ops_cb_flags;
		if (use_storage)
			/* The workaround: only this prog's own bool goes off. */
			set_want(&b_state, skops, 0);
		else
			/* The talk's prog_b: done with the handshake, so it turns the flag off -
			 * for every program on this socket.
			 */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
						  ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		c->flags_after_established = skops->bpf_sock_ops_cb_flags;
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		c->flags_at_established = skops->bpf_sock_ops_cb_flags;
		c->flags_after_established = skops->bpf_sock_ops_cb_flags;
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		/* prog_b is also called wherever prog_a turned the flag on (the active
		 * socket): the shared flags cut both ways, so it only acts on SYN-ACKs.
		 */
		if (use_storage && !wants(&b_state, skops)) {
			c->skipped++;
			break;
		}
		if (skops->args[0] == BPF_WRITE_HDR_TCP_CURRENT_MSS)
			c->hdr_opt_len_mss++;
		else
			c->hdr_opt_len++;
		if (is_synack(skops))
			bpf_reserve_hdr_opt(skops, OPT_LEN, 0);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		if (use_storage && !wants(&b_state, skops)) {
			c->skipped++;
			break;
		}
		c->write_hdr_opt++;
		if (is_synack(skops) && store_option(skops, MAGIC_B)) {
			c->written++;
			c->written_data += has_payload(skops);
		}
		break;
	}
	return 1;
}

SEC("sockops")
int prog_a(struct bpf_sock_ops *skops)
{
	return handle_a(skops, 0);
}

SEC("sockops")
int prog_b(struct bpf_sock_ops *skops)
{
	return handle_b(skops, 0);
}

SEC("sockops")
int prog_a_storage(struct bpf_sock_ops *skops)
{
	return handle_a(skops, 1);
}

SEC("sockops")
int prog_b_storage(struct bpf_sock_ops *skops)
{
	return handle_b(skops, 1);
}

char LICENSE[] SEC("license") = "GPL";
