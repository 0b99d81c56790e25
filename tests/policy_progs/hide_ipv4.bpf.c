// SPDX-License-Identifier: GPL-2.0
/* IPv4 hiding from the talk: AF_INET sockets refused with EAFNOSUPPORT (runtimes take it as
 * "no IPv4 here"; EPERM, the default for a return of 0, makes them fail). bpf_set_retval
 * came in v5.18 (b44123b4a3dc): older kernels refuse the load. */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2

SEC("cgroup/sock_create")
int hide_ipv4(struct bpf_sock *ctx)
{
	if (ctx->family != AF_INET)
		return 1;
	bpf_set_retval(-EAFNOSUPPORT);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
