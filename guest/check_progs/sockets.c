/* check_progs' sockets, one of each kind, made once so that no traffic happens during
 * the runs; iptables and ip6tables filter tables past a page for their getsockopts. */
#include "driver.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* ---- the sockets, made once so that no traffic happens during the runs ---- */
const char *sock_names[NR_SOCKS] = { "tcp", "udp", "raw", "raw6", "packet", "unix", "netlink", "unix-mid" };
int socks[NR_SOCKS];
int nr_groups, nr_mid_groups;
struct filter_table tables[2];

/* A connected loopback pair: the client end, the accepted end kept open in *server. */
static int tcp_pair(int *server)
{
	unsigned short port;
	int listener = tcp_listener(0, &port), client = tcp_connect(port);

	*server = tcp_accept(listener);
	close(listener);
	return client;
}

/* The filter table, replaced by one with never-matching rules (a TEST-NET source) until it
 * is larger than a page, the way iptables-legacy writes it: IPT_SO_SET_REPLACE. */
#define BUILD_FILTER_TABLE(fn, ENTRY, STANDARD, ERROR, REPLACE, GETINFO, LEVEL, SO_GET_INFO, SO_SET_REPLACE, SOURCE) \
static void fn(int fd, int slot)                                                                     \
{                                                                                                      \
	GETINFO info = { .name = "filter" };                                                           \
	socklen_t len = sizeof(info);                                                                  \
	int rules = page / sizeof(STANDARD) + EXTRA_RULES, n = rules + 3;                              \
	size_t size = n * sizeof(STANDARD) + sizeof(ERROR);                                            \
	REPLACE *repl = calloc(1, sizeof(*repl) + size);                                               \
	struct xt_counters *counters;                                                                  \
	char *at = (char *)repl->entries;                                                              \
                                                                                                       \
	if (getsockopt(fd, LEVEL, SO_GET_INFO, &info, &len)) {                                         \
		tables[slot].err = errno;                                                              \
		return;                                                                                \
	}                                                                                              \
	counters = calloc(info.num_entries, sizeof(*counters));                                        \
	for (int i = 0; i < n; i++, at += sizeof(STANDARD)) {                                          \
		STANDARD *rule = (STANDARD *)at;                                                       \
		rule->entry.target_offset = sizeof(ENTRY);                                             \
		rule->entry.next_offset = sizeof(STANDARD);                                            \
		rule->target.target.u.user.target_size = sizeof(rule->target);                         \
		rule->target.verdict = -NF_ACCEPT - 1;                                                 \
		if (i < rules)                                                                         \
			SOURCE(rule, i);                                                               \
	}                                                                                              \
	ERROR *end = (ERROR *)at;                                                                      \
	end->entry.target_offset = sizeof(ENTRY);                                                      \
	end->entry.next_offset = sizeof(ERROR);                                                        \
	end->target.target.u.user.target_size = sizeof(end->target);                                  \
	strcpy(end->target.target.u.user.name, "ERROR");                                              \
	strcpy(end->target.errorname, "ERROR");                                                       \
	strcpy(repl->name, "filter");                                                                  \
	repl->valid_hooks = 1 << NF_INET_LOCAL_IN | 1 << NF_INET_FORWARD | 1 << NF_INET_LOCAL_OUT;    \
	repl->num_entries = n + 1;                                                                     \
	repl->size = size;                                                                             \
	repl->hook_entry[NF_INET_LOCAL_IN] = 0;                                                        \
	repl->underflow[NF_INET_LOCAL_IN] = rules * sizeof(STANDARD);                                  \
	repl->hook_entry[NF_INET_FORWARD] = repl->underflow[NF_INET_FORWARD] = (rules + 1) * sizeof(STANDARD); \
	repl->hook_entry[NF_INET_LOCAL_OUT] = repl->underflow[NF_INET_LOCAL_OUT] = (rules + 2) * sizeof(STANDARD); \
	repl->num_counters = info.num_entries;                                                         \
	repl->counters = counters;                                                                     \
	if (setsockopt(fd, LEVEL, SO_SET_REPLACE, repl, sizeof(*repl) + size)) {                       \
		tables[slot].err = errno;                                                              \
	} else {                                                                                       \
		tables[slot].built = 1;                                                                \
		tables[slot].rules = rules;                                                            \
		tables[slot].size = size;                                                              \
	}                                                                                              \
	free(counters);                                                                                \
	free(repl);                                                                                    \
}

/* a rule and the table's end, as iptables-legacy lays them out (not in the uapi headers for IPv4) */
struct rule4 { struct ipt_entry entry; struct xt_standard_target target; };
struct end4 { struct ipt_entry entry; struct xt_error_target target; };
struct rule6 { struct ip6t_entry entry; struct xt_standard_target target; };
struct end6 { struct ip6t_entry entry; struct xt_error_target target; };

#define SOURCE4(rule, i) do { (rule)->entry.ip.src.s_addr = htonl(0xc0000200 | ((i) & 0xff)); \
	(rule)->entry.ip.smsk.s_addr = 0xffffffff; } while (0)
#define SOURCE6(rule, i) do { inet_pton(AF_INET6, "2001:db8::", &(rule)->entry.ipv6.src); \
	(rule)->entry.ipv6.src.s6_addr[15] = (i) & 0xff; memset(&(rule)->entry.ipv6.smsk, 0xff, 16); } while (0)

BUILD_FILTER_TABLE(build_table4, struct ipt_entry, struct rule4, struct end4, struct ipt_replace,
		   struct ipt_getinfo, IPPROTO_IP, IPT_SO_GET_INFO, IPT_SO_SET_REPLACE, SOURCE4)
BUILD_FILTER_TABLE(build_table6, struct ip6t_entry, struct rule6, struct end6, struct ip6t_replace,
		   struct ip6t_getinfo, IPPROTO_IPV6, IP6T_SO_GET_INFO, IP6T_SO_SET_REPLACE, SOURCE6)

void make_sockets(void)
{
	unsigned char ip_options[8] = { 1 /* NOP */, 7 /* RR */, 7, 4, 0, 0, 0, 0 };
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	int unix_pair[2], server, group;

	socks[TCP] = tcp_pair(&server);
	socks[UDP] = socket(AF_INET, SOCK_DGRAM, 0);
	/* IP_OPTIONS answers what was set: a record-route option, as a tracing tool sets it */
	if (socks[UDP] < 0 || setsockopt(socks[UDP], IPPROTO_IP, IP_OPTIONS, ip_options, sizeof(ip_options)))
		fail("UDP socket with IP_OPTIONS");
	socks[RAW4] = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	socks[RAW6] = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
	socks[PACKET] = socket(AF_PACKET, SOCK_RAW, 0);     /* protocol 0: receives nothing */
	socks[UNIX_MID] = -1;
	if (page > SMALL_PAGE) {        /* groups for an answer halfway between 4 KiB and the page */
		nr_mid_groups = (SMALL_PAGE + (page - SMALL_PAGE) / 2) / sizeof(gid_t);
		set_peer_groups(nr_mid_groups);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, unix_pair))
			fail("AF_UNIX socketpair");
		socks[UNIX_MID] = unix_pair[0];
	}
	nr_groups = page / 4 + EXTRA_GROUPS;
	set_peer_groups(nr_groups);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, unix_pair))
		fail("AF_UNIX socketpair");
	socks[UNIX_PAIR] = unix_pair[0];
	socks[NETLINK] = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (socks[RAW4] < 0 || socks[RAW6] < 0 || socks[PACKET] < 0 || socks[NETLINK] < 0 ||
	    bind(socks[NETLINK], (void *)&nl, sizeof(nl)))
		fail("raw, packet or netlink socket");
	/* NETLINK_LIST_MEMBERSHIPS answers with optval NULL only after a join */
	group = RTNLGRP_LINK;
	if (setsockopt(socks[NETLINK], SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)))
		fail("NETLINK_ADD_MEMBERSHIP");
	build_table4(socks[RAW4], 0);
	build_table6(socks[RAW6], 1);
}
