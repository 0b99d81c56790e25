// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup socket policy with lsm_cgroup (BPF_LSM_CGROUP), after Stanislav
 * Fomichev's LPC 2022 talk "Networking resource control with per-cgroup LSM":
 * a default SO_PRIORITY set by BPF that the task cannot override, NET_RAW_XMIT
 * (AF_PACKET for sending only) and IPv4 "hiding" with a chosen errno.
 *
 * The per-cgroup value is a read-only global set before load: the driver opens
 * one skeleton instance per value and attaches it to one cgroup, so no map keyed
 * by cgroup is needed (and inet_csk_clone runs in softirq, where the current
 * task's cgroup says nothing about the socket).
 *
 * The driver loads only the programs a case needs (the others have autoload off).
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/if_packet.h>
#include <asm/socket.h>		/* SOL_SOCKET, SO_PRIORITY */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsm_priority.h"

/* From <sys/socket.h>, which does not build for the BPF target. */
#define AF_INET		2
#define AF_INET6	10
#define AF_PACKET	17

/* No vmlinux.h: just the fields read here. preserve_access_index makes them CO-RE
 * relocations, resolved against each guest kernel's BTF at load time. */
struct sock_common {
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct sockaddr;
struct request_sock;

char LICENSE[] SEC("license") = "GPL";	/* lsm_cgroup and bpf_probe_read_kernel need it */

/* The priority this instance enforces, and the guest's page size (guard_priority's
 * threshold): set by the driver between open and load. */
const volatile __u32 prio = 0;
const volatile __u32 page_size = 0;

/* What the priority programs saw, read back by the driver through the skeleton. */
__u32 post_create_runs;
__u32 clone_runs;
/* SO_PRIORITY of the socket when prio_post_create ran: non-zero means another
 * program (another cgroup's instance) had written it first. */
int seen_prio = -1;
int post_create_ret;	/* bpf_setsockopt() results: 0, or why the kernel refused */
int clone_ret;

/* A do-nothing program: loading and attaching it tells whether the kernel knows
 * lsm_cgroup at all, apart from whether it likes the helpers the others call. */
SEC("lsm_cgroup/socket_post_create")
int BPF_PROG(probe, struct socket *sock, int family, int type, int protocol, int kern)
{
	return 1;
}

/* Active sockets of every family (AF_PACKET and AF_UNIX too): the hook runs after
 * the protocol created sock->sk, in the creating task's context. */
SEC("lsm_cgroup/socket_post_create")
int BPF_PROG(prio_post_create, struct socket *sock, int family, int type, int protocol, int kern)
{
	struct sock *sk = sock->sk;
	int val = prio, old = -1;

	post_create_runs++;
	if (!sk)
		return 1;
	if (bpf_getsockopt(sk, SOL_SOCKET, SO_PRIORITY, &old, sizeof(old)) == 0)
		seen_prio = old;
	post_create_ret = bpf_setsockopt(sk, SOL_SOCKET, SO_PRIORITY, &val, sizeof(val));
	return 1;	/* 0 would deny the socket (EPERM) */
}

/* Passive (accepted) sockets: socket_post_create never runs for them, this hook
 * does, when the handshake completes (not in accept()). 69fd337a975c meant the new sock's
 * cgroup (the listener's) to pick the programs; the kernels tested pick the current
 * task's cgroup instead (case whose_cgroup), on loopback the connecting task's. */
SEC("lsm_cgroup/inet_csk_clone")
int BPF_PROG(prio_clone, struct sock *newsk, const struct request_sock *req)
{
	int val = prio;

	clone_runs++;
	clone_ret = bpf_setsockopt(newsk, SOL_SOCKET, SO_PRIORITY, &val, sizeof(val));
	return 1;	/* void hook: lsm_cgroup programs on it must return 1 */
}

/* Who ran inet_csk_clone: a plain BPF LSM program (not per cgroup) sees every call,
 * so a handshake whose lsm_cgroup program did not run still shows whose context it
 * completed in: the connecting task, or softirq work deferred to ksoftirqd (or an
 * interrupted idle task), whose cgroup is the root. */
struct clone_context clone_contexts[CLONE_CONTEXTS];
__u32 clone_calls;

SEC("lsm/inet_csk_clone")
int BPF_PROG(clone_witness, struct sock *newsk, const struct request_sock *req)
{
	__u32 i = clone_calls++;
	struct clone_context *seen;

	if (i >= CLONE_CONTEXTS)
		return 0;
	seen = &clone_contexts[i];
	seen->tgid = bpf_get_current_pid_tgid() >> 32;
	seen->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(seen->comm, sizeof(seen->comm));
	return 0;	/* void hook: the value is not used */
}

/* NET_RAW_XMIT, part 1: a packet socket created with a protocol starts receiving
 * that protocol at once (protocol is ETH_P_* in network order, 0 = nothing), so
 * only protocol 0 - a socket that can send but hears nothing - is allowed. */
SEC("lsm_cgroup/socket_post_create")
int BPF_PROG(raw_xmit_create, struct socket *sock, int family, int type, int protocol, int kern)
{
	if (family == AF_PACKET && protocol != 0)
		return 0;	/* -EPERM */
	return 1;
}

/* NET_RAW_XMIT, part 2: bind() can turn reception on later (sll_protocol), so deny
 * that too. address points to the kernel's copy of the user's sockaddr. */
SEC("lsm_cgroup/socket_bind")
int BPF_PROG(raw_xmit_bind, struct socket *sock, struct sockaddr *address, int addrlen)
{
	struct sockaddr_ll sll = {};
	struct sock *sk = sock->sk;

	if (!sk || sk->__sk_common.skc_family != AF_PACKET)
		return 1;
	/* sockaddr_ll is longer than the struct sockaddr the hook is typed with. */
	if (bpf_probe_read_kernel(&sll, sizeof(sll), address))
		return 0;
	return sll.sll_protocol == 0;
}

/* The "naive" SO_PRIORITY of the talk: BPF_CGROUP_INET_SOCK_CREATE runs only for
 * AF_INET/AF_INET6 sockets created by socket(), never for accepted or AF_PACKET ones. */
SEC("cgroup/sock_create")
int sock_create_prio(struct bpf_sock *ctx)
{
	ctx->priority = prio;
	return 1;
}

/* IPv4 "hiding": runtimes such as the JRE treat EAFNOSUPPORT as "no IPv4 here" but
 * fail hard on EPERM, so the program chooses the errno instead of the default. */
SEC("cgroup/sock_create")
int hide_ipv4(struct bpf_sock *ctx)
{
	if (ctx->family != AF_INET)
		return 1;
	bpf_set_retval(-EAFNOSUPPORT);
	return 0;
}

/* SO_PRIORITY identifies the container, so the task may not change it. */
SEC("cgroup/setsockopt")
int guard_priority(struct bpf_sockopt *ctx)
{
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_PRIORITY)
		return 0;	/* -EPERM */
	/* Any other option goes to the kernel untouched. optlen = 0 says "use the
	 * user's buffer": without it an optlen over PAGE_SIZE is EFAULT on kernels
	 * before 29ebbba7d461 (see kernel-facts.md section 1). */
	if (ctx->optlen > page_size)
		ctx->optlen = 0;
	return 1;
}
