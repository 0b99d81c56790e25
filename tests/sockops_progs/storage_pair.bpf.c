// SPDX-License-Identifier: GPL-2.0
/* The talk's workaround: prog_b keeps "do I still want header-option callbacks" in a
 * bpf_sk_storage bool of its own and returns early when not; nobody clears a flag. */
#include "common_sockops.h"

struct want {
	__u8 header_options;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);	/* a child takes its listener's */
	__type(key, int);
	__type(value, struct want);
} b_wants SEC(".maps");

SEC("sockops")
int prog_a(struct bpf_sock_ops *skops)
{
	return option_everywhere(skops, MAGIC_A);
}

SEC("sockops")
int prog_b_storage(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct want *want;

	if (skops->op == BPF_SOCK_OPS_TCP_LISTEN_CB)
		flags_on(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	if (!skops->is_fullsock || !sk) {       /* a request socket: the SYN-ACK, which b wants */
		if (is_synack(skops))
			write_option(skops, MAGIC_B);
		return 1;
	}
	want = bpf_sk_storage_get(&b_wants, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!want)
		return 1;
	if (skops->op == BPF_SOCK_OPS_TCP_LISTEN_CB)
		want->header_options = 1;
	else if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		want->header_options = 0;       /* only its own bool goes off */
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
