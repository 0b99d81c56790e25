/* Shared by progs/net_policy.bpf.c and guest/net_policy.c: the container's policy as the
 * manager writes it into cgroup local storage, the values the cases use, and what the
 * programs write back into the same storage. */
#ifndef NET_POLICY_H
#define NET_POLICY_H

/* TOS / traffic class values (ECN bits clear, so the byte on the wire is the value) */
#define TOS_ALLOWED	0x28	/* AF11: in the container's list */
#define TOS_FORBIDDEN	0x48	/* AF21: not in it */

/* Ports: the policy covers those under PORT_LIMIT ("only about lower 16k ports") */
#define PORT_LIMIT	16384
#define PORT_LO		7000	/* the container's own range under the limit */
#define PORT_HI		7099
#define PORT_REFUSED	7100	/* under the limit, outside the range */
#define LOCAL_RANGE_LO	9000	/* the netns's ip_local_port_range: under the limit too */
#define LOCAL_RANGE_HI	9099
#define REWRITE_FROM	7080	/* a bind to this port lands on REWRITE_TO */
#define REWRITE_TO	80	/* under ip_unprivileged_port_start (1024) */

#define PERMIT_INET	1	/* the container may make AF_INET sockets */
#define STAMP		0x5a5a	/* what cgroup/sock_create writes, for the other hooks to read */

struct container_policy {
	/* written by the manager (the driver) */
	__u8 tos_allowed[256];		/* 1: the container may set this TOS / traffic class */
	__u32 port_lo, port_hi;
	__u32 permitted;		/* PERMIT_INET */
	/* written by the programs */
	__u32 stamp;			/* cgroup/sock_create */
	__u32 creates;			/* sockets cgroup/sock_create let through */
	__u32 stamp_seen_at_setsockopt;	/* cgroup/setsockopt read stamp */
	__u32 stamp_seen_at_bind;	/* cgroup/bind4, bind6 read stamp */
};

#endif
