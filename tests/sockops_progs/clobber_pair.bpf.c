// SPDX-License-Identifier: GPL-2.0
/* The talk's pair: prog_a writes its option on every segment; prog_b wants header options only
 * for the SYN-ACK and clears WRITE_HDR_OPT once the passive socket is established, for every
 * program on the socket, since the flags are one byte per socket. */
#include "common_sockops.h"

SEC("sockops")
int prog_a(struct bpf_sock_ops *skops)
{
	return option_everywhere(skops, MAGIC_A);
}

SEC("sockops")
int prog_b(struct bpf_sock_ops *skops)
{
	if (skops->op == BPF_SOCK_OPS_TCP_LISTEN_CB)
		flags_on(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	else if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		flags_off(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	else if (is_synack(skops))
		write_option(skops, MAGIC_B);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
