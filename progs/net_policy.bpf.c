// SPDX-License-Identifier: GPL-2.0
/* The rest of the per-cgroup networking policy of Stanislav Fomichev's LPC 2022 talk
 * ("Networking resource control with per-cgroup LSM"), with plain cgroup hooks that
 * every kernel here has: an IP_TOS / IPV6_TCLASS allow-list, bind-port limits and a
 * bind rewrite to a privileged port, IPv4 hiding in cgroup/sock_create, all reading the
 * container's policy from one cgroup local storage (key: the cgroup id alone, so every
 * attach type of the cgroup shares it, 7d9c3427894f).
 *
 * The driver loads only the programs a case needs (the others have autoload off): the
 * bind rewrite returning 3 and bpf_set_retval are refused by kernels before their commits.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "net_policy.h"

/* From the libc headers, which do not build for the BPF target. */
#define AF_INET		2
#define AF_INET6	10
#define SOL_IP		0
#define IP_TOS		1
#define SOL_IPV6	41
#define IPV6_TCLASS	67

char LICENSE[] SEC("license") = "GPL";

/* The container's policy: one storage per cgroup, shared by every program on it. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct container_policy);
} policy SEC(".maps");

/* The older key (cgroup id, attach type): one storage per attach type of the cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, __u32);
} per_type SEC(".maps");

/* What the bind hooks saw, read by the driver through the skeleton. */
__u32 bind_runs;
__u32 bind_last_port;

/* What the rewrite programs return when they rewrite: 3 (bit 1: skip the
 * CAP_NET_BIND_SERVICE check, 772412176fb9) or 1 (the kernel still checks it). Read-only,
 * so the verifier knows it: a kernel without the commit refuses 3 at load. */
const volatile __u32 rewrite_ret = 1;
/* The guest's page size, set by the driver before the load: past it, the user's buffer. */
const volatile __u32 page_size = 0;

/* IPv4 hiding, and the stamp the other hooks read back: AF_INET only where the policy
 * permits it; a refusal is the kernel's default errno, EPERM. */
SEC("cgroup/sock_create")
int sock_policy(struct bpf_sock *ctx)
{
	struct container_policy *p = bpf_get_local_storage(&policy, 0);

	if (ctx->family == AF_INET && !(p->permitted & PERMIT_INET))
		return 0;
	p->stamp = STAMP;
	__sync_fetch_and_add(&p->creates, 1);
	return 1;
}

/* The talk's version: the errno JREs read as "no IPv4 here" (b44123b4a3dc, v5.18). */
SEC("cgroup/sock_create")
int sock_policy_errno(struct bpf_sock *ctx)
{
	struct container_policy *p = bpf_get_local_storage(&policy, 0);

	if (ctx->family == AF_INET && !(p->permitted & PERMIT_INET)) {
		bpf_set_retval(-EAFNOSUPPORT);
		return 0;
	}
	return 1;
}

/* The TOS allow-list: setsockopt(IP_TOS / IPV6_TCLASS) with a value not in the list is
 * EPERM. Nothing else sets the TOS through this hook: a cmsg on sendmsg never reaches it. */
SEC("cgroup/setsockopt")
int tos_allow_list(struct bpf_sockopt *ctx)
{
	struct container_policy *p = bpf_get_local_storage(&policy, 0);
	__u8 *optval = ctx->optval, *end = ctx->optval_end;
	__u32 value;

	p->stamp_seen_at_setsockopt = p->stamp;
	if (!(ctx->level == SOL_IP && ctx->optname == IP_TOS) &&
	    !(ctx->level == SOL_IPV6 && ctx->optname == IPV6_TCLASS)) {
		if (ctx->optlen > page_size)	/* the user's buffer, untouched (29ebbba7d461) */
			ctx->optlen = 0;
		return 1;
	}
	if (optval + sizeof(int) <= end)
		value = *(int *)optval;
	else if (optval + 1 <= end)
		value = *optval;		/* IP_TOS also takes one byte */
	else
		return 0;
	return value < 256 && p->tos_allowed[value & 0xff];
}

/* The same list at bind (the talk: "when task bind()'s or calls setsockopt"): a TOS set
 * before the policy arrived is refused there. bpf_getsockopt in bind hooks: 427167c0b064. */
static int bind_tos(struct bpf_sock_addr *ctx, int level, int optname)
{
	struct container_policy *p = bpf_get_local_storage(&policy, 0);
	int tos = -1;

	if (bpf_getsockopt(ctx, level, optname, &tos, sizeof(tos)) || tos < 0 || tos > 255)
		return 0;
	return p->tos_allowed[tos & 0xff] != 0;
}

SEC("cgroup/bind4")
int bind4_tos(struct bpf_sock_addr *ctx)
{
	return bind_tos(ctx, SOL_IP, IP_TOS);
}

SEC("cgroup/bind6")
int bind6_tos(struct bpf_sock_addr *ctx)
{
	return bind_tos(ctx, SOL_IPV6, IPV6_TCLASS);
}

/* Bind-port limits: ports under PORT_LIMIT only in the container's range. Port 0 (the
 * kernel picks one later) cannot be judged here; connect() without bind() never comes. */
static int bind_limit(struct bpf_sock_addr *ctx)
{
	struct container_policy *p = bpf_get_local_storage(&policy, 0);
	__u32 port = bpf_ntohs(ctx->user_port);

	bind_runs++;
	bind_last_port = port;
	p->stamp_seen_at_bind = p->stamp;
	if (port == 0 || port >= PORT_LIMIT)
		return 1;
	return port >= p->port_lo && port <= p->port_hi;
}

SEC("cgroup/bind4")
int bind4_limit(struct bpf_sock_addr *ctx)
{
	return bind_limit(ctx);
}

SEC("cgroup/bind6")
int bind6_limit(struct bpf_sock_addr *ctx)
{
	return bind_limit(ctx);
}

/* The rewrite: a bind to REWRITE_FROM lands on REWRITE_TO, a privileged port. */
static int bind_rewrite(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port != bpf_htons(REWRITE_FROM))
		return 1;
	ctx->user_port = bpf_htons(REWRITE_TO);
	return rewrite_ret;
}

SEC("cgroup/bind4")
int bind4_rewrite(struct bpf_sock_addr *ctx)
{
	return bind_rewrite(ctx);
}

SEC("cgroup/bind6")
int bind6_rewrite(struct bpf_sock_addr *ctx)
{
	return bind_rewrite(ctx);
}

/* The same stamp through the per-attach-type map: cgroup/sock_create writes its storage,
 * cgroup/setsockopt reads its own. */
SEC("cgroup/sock_create")
int typed_stamp(struct bpf_sock *ctx)
{
	__u32 *stamp = bpf_get_local_storage(&per_type, 0);

	*stamp = STAMP;
	return 1;
}

SEC("cgroup/setsockopt")
int typed_read(struct bpf_sockopt *ctx)
{
	__u32 *seen = bpf_get_local_storage(&per_type, 0);

	*seen = *seen == STAMP ? STAMP : 1;	/* 1: ran, saw no stamp */
	if (ctx->optlen > page_size)
		ctx->optlen = 0;
	return 1;
}
