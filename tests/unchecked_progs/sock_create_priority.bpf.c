// SPDX-License-Identifier: GPL-2.0
/* A socket policy as fleets write it: every socket created in the cgroup gets priority 6.
 * check-progs does not check socket-policy programs yet; it must say so, never "clean". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/sock_create")
int stamp_priority(struct bpf_sock *sk)
{
	sk->priority = 6;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
