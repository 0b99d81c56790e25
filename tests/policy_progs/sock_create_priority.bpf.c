// SPDX-License-Identifier: GPL-2.0
/* The talk's first SO_PRIORITY policy: every socket created in the cgroup gets priority 6,
 * through cgroup/sock_create, which misses accepted sockets and every family but INET. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/sock_create")
int stamp_priority(struct bpf_sock *sk)
{
	sk->priority = 6;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
