/* Shared by the sockops fixtures: header options as programs in the field write them
 * (kind 254, a 16-bit ExID), and the callback flags set the polite way (read-modify-write). */
#ifndef FIXTURE_SOCKOPS_H
#define FIXTURE_SOCKOPS_H
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TCPOPT_EXP	254
#define OPT_LEN		4
#define TCPHDR_SYN	0x02
#define TCPHDR_ACK	0x10

static __always_inline void flags_on(struct bpf_sock_ops *skops, int bits)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | bits);
}

static __always_inline void flags_off(struct bpf_sock_ops *skops, int bits)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~bits);
}

static __always_inline int is_synack(struct bpf_sock_ops *skops)
{
	return (skops->skb_tcp_flags & (TCPHDR_SYN | TCPHDR_ACK)) == (TCPHDR_SYN | TCPHDR_ACK);
}

/* At HDR_OPT_LEN_CB reserve, at WRITE_HDR_OPT_CB write our option; other ops untouched. */
static __always_inline void write_option(struct bpf_sock_ops *skops, __u16 magic)
{
	__u8 opt[OPT_LEN] = { TCPOPT_EXP, OPT_LEN, magic >> 8, magic & 0xff };

	if (skops->op == BPF_SOCK_OPS_HDR_OPT_LEN_CB)
		bpf_reserve_hdr_opt(skops, OPT_LEN, 0);
	else if (skops->op == BPF_SOCK_OPS_WRITE_HDR_OPT_CB)
		bpf_store_hdr_opt(skops, opt, sizeof(opt), 0);
}

/* The talk's prog_a: its option on every segment of every connection. */
static __always_inline int option_everywhere(struct bpf_sock_ops *skops, __u16 magic)
{
	if (skops->op == BPF_SOCK_OPS_TCP_LISTEN_CB || skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		flags_on(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
	write_option(skops, magic);
	return 1;
}

#define MAGIC_A 0xA1A1
#define MAGIC_B 0xB2B2
#endif
