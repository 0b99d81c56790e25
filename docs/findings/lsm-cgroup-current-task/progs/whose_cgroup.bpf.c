// SPDX-License-Identifier: GPL-2.0
/* Reproducer: whose cgroup's lsm_cgroup programs run for a hook whose first argument
 * is a socket? This program denies bind() (returns 0: EPERM) in the cgroup it is
 * attached to and counts its runs. The driver binds a socket created in that cgroup
 * from a task in another one, and the other way round. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct socket;
struct sockaddr;

__u32 runs;

SEC("lsm_cgroup/socket_bind")
int BPF_PROG(deny_bind, struct socket *sock, struct sockaddr *address, int addrlen)
{
	runs++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
