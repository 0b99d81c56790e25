// SPDX-License-Identifier: GPL-2.0
/* The talk's replacement: SO_PRIORITY 6 through lsm_cgroup, for active sockets of every family
 * (socket_post_create) and for accepted ones when the handshake completes (inet_csk_clone). */
#include <linux/bpf.h>
#include <asm/socket.h>		/* SOL_SOCKET, SO_PRIORITY */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* just the fields used; CO-RE relocations against the guest's BTF */
struct sock;
struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));
struct request_sock;

#define PRIORITY 6

SEC("lsm_cgroup/socket_post_create")
int BPF_PROG(stamp_created, struct socket *sock, int family, int type, int protocol, int kern)
{
	struct sock *sk = sock->sk;	/* read once: the verifier tracks the null check on this copy */
	int val = PRIORITY;

	if (sk)
		bpf_setsockopt(sk, SOL_SOCKET, SO_PRIORITY, &val, sizeof(val));
	return 1;
}

SEC("lsm_cgroup/inet_csk_clone")
int BPF_PROG(stamp_accepted, struct sock *newsk, const struct request_sock *req)
{
	int val = PRIORITY;

	bpf_setsockopt(newsk, SOL_SOCKET, SO_PRIORITY, &val, sizeof(val));
	return 1;	/* a void hook: lsm_cgroup programs on it return 1 */
}

char LICENSE[] SEC("license") = "GPL";
