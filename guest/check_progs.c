/* Guest driver for `kregress check-progs`: the user's cgroup sockopt programs against a
 * fixed battery of socket calls, with and without the programs.
 *
 *   check_progs OBJECT.bpf.o [MAPS_FILE|-]
 *
 * Opens OBJECT with libbpf and loads its cgroup/getsockopt and cgroup/setsockopt
 * programs; every other program is left unloaded and reported as not checked. MAPS_FILE
 * (made by the host from --maps JSON) has lines "MAP KEY VALUE", KEY and VALUE either a
 * decimal integer (little-endian, the map's size) or 0x<hex bytes> of exactly that size.
 *
 * In a network namespace and a cgroup of its own it makes one socket of each kind, then
 * runs the battery without programs, then once per program with only that program
 * attached, each followed by another run without: an answer that differs between the two
 * runs around a program is volatile (time, counters), not the program's doing.
 *
 * Prints one JSON object. A refused load or attach is an observation ("refused": the
 * errno and libbpf's log, which carries the kernel's verifier log), exit 0; bad input
 * exits 2 with {"error": ...}.
 */
#include "common.h"
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <arpa/inet.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define SO_ORIGINAL_DST 80
#define SO_NOBODY_HANDLES 9876      /* an option no kernel handler knows */
#define EXTRA_GROUPS 76             /* SO_PEERGROUPS past a page: PAGE_SIZE/4 + 76 groups */
#define EXTRA_RULES 8               /* iptables table past a page */
#define MAX_PROGS 16
#define MAX_CALLS 256
#define PATTERN 0xa5                /* the caller's buffer before the call */

static long page;

/* The JSON is built in memory: a set-up failure half-way (fail(), common.h) must leave
 * exactly its own {"error": ...} object on stdout, not a half-printed one before it. */
static FILE *real_stdout;
static char *out_text;
static size_t out_len;

static void flush_output(void)
{
	const char *error;

	fflush(stdout);
	error = strstr(out_text, "{\"error\": \"");
	fputs(error ? error : out_text, real_stdout);
	fflush(real_stdout);
}

static void buffer_output(void)
{
	real_stdout = stdout;
	stdout = open_memstream(&out_text, &out_len);
	atexit(flush_output);
}

/* ---- libbpf's words, kept for a refused load or attach ---- */
static char libbpf_log[32768];
static size_t libbpf_log_len;

static int keep_libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (level == LIBBPF_DEBUG || n <= 0)
		return 0;
	if (libbpf_log_len + n >= sizeof(libbpf_log))     /* keep the tail: the verifier's verdict is last */
		libbpf_log_len = 0;
	memcpy(libbpf_log + libbpf_log_len, line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
	libbpf_log_len += n < (int)sizeof(line) ? n : (int)sizeof(line) - 1;
	libbpf_log[libbpf_log_len] = 0;
	return 0;
}

static void program_refused(const char *stage, const char *prog, int err)
{
	json_obj_open("refused");
	json_str("stage", stage);
	json_str("program", prog ? prog : "");
	json_str("errno", errno_name(err));
	json_str("strerror", strerror(err));
	json_str("libbpf_log", libbpf_log);
	json_obj_close();
	json_close();
	exit(0);
}

/* ---- the sockets, made once so that no traffic happens during the runs ---- */
enum sock_kind { TCP, UDP, RAW4, RAW6, PACKET, UNIX_PAIR, NETLINK, NR_SOCKS };
static const char *sock_names[] = { "tcp", "udp", "raw", "raw6", "packet", "unix", "netlink" };
static int socks[NR_SOCKS];
static int nr_groups;
static struct { int built; int err; int rules; int size; } tables[2];   /* [0] IPv4, [1] IPv6 */

static int tcp_pair(int *server)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int listener = socket(AF_INET, SOCK_STREAM, 0), client = socket(AF_INET, SOCK_STREAM, 0);

	if (listener < 0 || client < 0 || bind(listener, (void *)&addr, sizeof(addr)) || listen(listener, 1) ||
	    getsockname(listener, (void *)&addr, &len) || connect(client, (void *)&addr, sizeof(addr)))
		fail("loopback TCP connection");
	*server = accept(listener, NULL, NULL);
	if (*server < 0)
		fail("accept");
	close(listener);
	return client;
}

static void set_peergroups(void)
{
	gid_t *groups;

	nr_groups = page / 4 + EXTRA_GROUPS;
	groups = calloc(nr_groups, sizeof(*groups));
	for (int i = 0; i < nr_groups; i++)
		groups[i] = 10000 + i;
	if (setgroups(nr_groups, groups))
		fail("setgroups(%d)", nr_groups);
	free(groups);
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

static void make_sockets(void)
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
	set_peergroups();
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

/* ---- the battery ---- */
enum size_kind { NATURAL, PAGE, PAGE_PLUS_1, TWO_PAGES, OPTVAL_NULL, NR_SIZES };
static const char *size_names[] = { "natural", "page", "page+1", "2page", "null" };

enum request { PLAIN, IPT_INFO, IPT_ENTRIES };

struct option_spec {
	enum sock_kind sock;
	int level, optname;
	const char *level_name, *optname_name;
	int natural;             /* the size a real caller passes; 0: computed at run time */
	enum request request;
	int value;               /* setsockopt: the value written */
};

static int ipt_natural(int slot)
{
	return (slot ? sizeof(struct ip6t_get_entries) : sizeof(struct ipt_get_entries)) + tables[slot].size;
}

#define OPT(s, l, o, n, req) { s, l, o, #l, #o, n, req, 0 }
static struct option_spec getters[] = {
	OPT(TCP, SOL_SOCKET, SO_TYPE, 4, PLAIN),
	OPT(TCP, SOL_SOCKET, SO_RCVBUF, 4, PLAIN),
	OPT(TCP, SOL_SOCKET, SO_PEERCRED, sizeof(struct ucred), PLAIN),
	OPT(TCP, SOL_SOCKET, SO_NOBODY_HANDLES, 4, PLAIN),
	OPT(TCP, SOL_TCP, TCP_INFO, sizeof(struct tcp_info), PLAIN),
	OPT(TCP, SOL_TCP, TCP_CONGESTION, 16, PLAIN),
	OPT(TCP, SOL_IP, IP_TOS, 4, PLAIN),
	OPT(TCP, SOL_IP, SO_ORIGINAL_DST, sizeof(struct sockaddr_in), PLAIN),
	OPT(UDP, SOL_IP, IP_OPTIONS, 40, PLAIN),
	OPT(UDP, SOL_IP, IP_TOS, 4, PLAIN),
	OPT(RAW4, SOL_IP, IP_HDRINCL, 4, PLAIN),
	OPT(RAW4, SOL_IP, IPT_SO_GET_INFO, sizeof(struct ipt_getinfo), IPT_INFO),
	OPT(RAW4, SOL_IP, IPT_SO_GET_ENTRIES, 0, IPT_ENTRIES),
	OPT(RAW6, SOL_IPV6, IP6T_SO_GET_INFO, sizeof(struct ip6t_getinfo), IPT_INFO),
	OPT(RAW6, SOL_IPV6, IP6T_SO_GET_ENTRIES, 0, IPT_ENTRIES),
	OPT(PACKET, SOL_SOCKET, SO_TYPE, 4, PLAIN),
	OPT(PACKET, SOL_PACKET, PACKET_STATISTICS, sizeof(struct tpacket_stats), PLAIN),
	OPT(UNIX_PAIR, SOL_SOCKET, SO_PEERCRED, sizeof(struct ucred), PLAIN),
	OPT(UNIX_PAIR, SOL_SOCKET, SO_PEERGROUPS, 0, PLAIN),
	OPT(NETLINK, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, 4, PLAIN),
};

#define SET(s, l, o, v) { s, l, o, #l, #o, 4, PLAIN, v }
static struct option_spec setters[] = {
	SET(TCP, SOL_IP, IP_TOS, 0x10),
	SET(TCP, SOL_TCP, TCP_NODELAY, 1),
	SET(TCP, SOL_SOCKET, SO_KEEPALIVE, 1),
	SET(UDP, SOL_SOCKET, SO_PRIORITY, 3),
	SET(UDP, SOL_SOCKET, SO_RCVBUF, 65536),
	SET(UNIX_PAIR, SOL_SOCKET, SO_PASSCRED, 1),
};
#define NR(a) (int)(sizeof(a) / sizeof((a)[0]))

static int natural_size(const struct option_spec *spec)
{
	if (spec->request == IPT_ENTRIES)
		return ipt_natural(spec->sock == RAW6);
	if (spec->optname == SO_PEERGROUPS && spec->level == SOL_SOCKET)
		return nr_groups * sizeof(gid_t);
	return spec->natural;
}

static int optlen_for(const struct option_spec *spec, enum size_kind size)
{
	switch (size) {
	case NATURAL: return natural_size(spec);
	case PAGE: return page;
	case PAGE_PLUS_1: return page + 1;
	case TWO_PAGES: return 2 * page;
	default: return 0;
	}
}

static unsigned long long fnv1a(const unsigned char *p, size_t n)
{
	unsigned long long h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

struct outcome { int err; int optlen; unsigned long long digest; int null; };

/* The request a real caller builds: the table name, or the name and the size from GET_INFO. */
static void build_request(const struct option_spec *spec, unsigned char *buf, int len)
{
	memset(buf, PATTERN, len);
	if (spec->request == IPT_INFO && len >= XT_TABLE_MAXNAMELEN) {
		memset(buf, 0, XT_TABLE_MAXNAMELEN);
		strcpy((char *)buf, "filter");
	} else if (spec->request == IPT_ENTRIES && len >= (int)sizeof(struct ipt_get_entries)) {
		/* same layout for IPv6: name[32], unsigned int size */
		struct ipt_get_entries *req = (void *)buf;
		memset(req, 0, sizeof(*req));
		strcpy(req->name, "filter");
		req->size = tables[spec->sock == RAW6].size;
	}
}

static struct outcome call_get(const struct option_spec *spec, enum size_kind size, unsigned char *buf)
{
	struct outcome out = { 0 };
	socklen_t optlen = optlen_for(spec, size);
	int len = optlen;

	if (size == OPTVAL_NULL) {
		out.null = 1;
		out.err = getsockopt(socks[spec->sock], spec->level, spec->optname, NULL, &optlen) ? errno : 0;
		out.optlen = optlen;
		return out;
	}
	build_request(spec, buf, len);
	out.err = getsockopt(socks[spec->sock], spec->level, spec->optname, buf, &optlen) ? errno : 0;
	out.optlen = optlen;
	out.digest = fnv1a(buf, len);      /* the whole buffer: what the caller has after the call */
	return out;
}

static int fresh_socket(enum sock_kind kind)
{
	int pair[2];

	switch (kind) {
	case TCP: return socket(AF_INET, SOCK_STREAM, 0);
	case UDP: return socket(AF_INET, SOCK_DGRAM, 0);
	case UNIX_PAIR:
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
			return -1;
		close(pair[1]);
		return pair[0];
	default: return -1;
	}
}

/* setsockopt on a fresh socket (no state carried between calls); the digest is the value
 * read back, the way the caller would check it */
static struct outcome call_set(const struct option_spec *spec, enum size_kind size, unsigned char *buf)
{
	struct outcome out = { 0 };
	int len = optlen_for(spec, size), fd = fresh_socket(spec->sock), back = 0;
	socklen_t back_len = sizeof(back);

	if (fd < 0)
		fail("socket for setsockopt %s", spec->optname_name);
	memset(buf, 0, len > 0 ? len : 4);
	memcpy(buf, &spec->value, sizeof(spec->value));
	out.null = size == OPTVAL_NULL;
	if (out.null)
		len = 4;
	out.err = setsockopt(fd, spec->level, spec->optname, out.null ? NULL : buf, len) ? errno : 0;
	out.optlen = -1;
	if (getsockopt(fd, spec->level, spec->optname, &back, &back_len))
		back = -errno;
	out.digest = (unsigned int)back;
	close(fd);
	return out;
}

static struct outcome results[MAX_PROGS + 1][2][MAX_CALLS];   /* [run][with?][call] */

static void run_battery(struct outcome *row)
{
	static unsigned char *buf;
	int n = 0;

	if (!buf)
		buf = malloc(2 * page + 64);
	for (int i = 0; i < NR(getters); i++)
		for (int s = 0; s < NR_SIZES; s++)
			row[n++] = call_get(&getters[i], s, buf);
	for (int i = 0; i < NR(setters); i++)
		for (int s = 0; s < NR_SIZES; s++)
			row[n++] = call_set(&setters[i], s, buf);
}

static void print_spec(const struct option_spec *spec, const char *op, enum size_kind size)
{
	printf("{\"socket\": \"%s\", \"op\": \"%s\", \"level\": %d, \"optname\": %d, \"level_name\": \"%s\", "
	       "\"optname_name\": \"%s\", \"size\": \"%s\", \"optlen_in\": %d}",
	       sock_names[spec->sock], op, spec->level, spec->optname, spec->level_name,
	       spec->optname == SO_NOBODY_HANDLES ? "9876 (no handler)" : spec->optname_name,
	       size_names[size], optlen_for(spec, size));
}

static void print_calls(void)
{
	int first = 1;

	json_key("calls");
	printf("[");
	for (int i = 0; i < NR(getters); i++)
		for (int s = 0; s < NR_SIZES; s++) {
			printf(first ? "" : ", ");
			first = 0;
			print_spec(&getters[i], "get", s);
		}
	for (int i = 0; i < NR(setters); i++)
		for (int s = 0; s < NR_SIZES; s++) {
			printf(", ");
			print_spec(&setters[i], "set", s);
		}
	printf("]");
}

static void print_row(const char *key, const struct outcome *row, int n)
{
	json_key(key);
	printf("[");
	for (int i = 0; i < n; i++) {
		if (row[i].null)
			printf("%s[\"%s\", %d, null]", i ? ", " : "", errno_name(row[i].err), row[i].optlen);
		else
			printf("%s[\"%s\", %d, \"%016llx\"]", i ? ", " : "", errno_name(row[i].err), row[i].optlen,
			       row[i].digest);
	}
	printf("]");
}

/* ---- maps from the host's file ---- */
static int parse_bytes(const char *token, unsigned char *out, int size)
{
	if (!strncmp(token, "0x", 2)) {
		if ((int)strlen(token + 2) != 2 * size)
			return -1;
		for (int i = 0; i < size; i++)
			if (sscanf(token + 2 + 2 * i, "%2hhx", &out[i]) != 1)
				return -1;
		return 0;
	}
	char *end;
	unsigned long long v = strtoull(token, &end, 10);

	if (*end || size > 8)
		return -1;
	memset(out, 0, size);
	memcpy(out, &v, size);      /* little-endian guests (x86_64, arm64) */
	return 0;
}

static void fill_maps(struct bpf_object *obj, const char *path)
{
	char name[128], key_text[1024], value_text[1024];
	unsigned char key[512], value[512];
	int line = 0;
	FILE *f;

	if (!strcmp(path, "-"))
		return;
	f = fopen(path, "r");
	if (!f)
		fail("open maps file %s", path);
	while (fscanf(f, "%127s %1023s %1023s", name, key_text, value_text) == 3) {
		struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
		int key_size, value_size;

		line++;
		if (!map)
			fail("--maps entry %d: the object has no map named %s", line, name);
		key_size = bpf_map__key_size(map);
		value_size = bpf_map__value_size(map);
		if (key_size > (int)sizeof(key) || value_size > (int)sizeof(value) ||
		    parse_bytes(key_text, key, key_size) || parse_bytes(value_text, value, value_size))
			fail("--maps entry %d (map %s): key %s / value %s do not fit its key size %d / value size %d "
			     "(give an integer, or 0x and exactly that many bytes in hex)",
			     line, name, key_text, value_text, key_size, value_size);
		if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY))
			program_refused("maps", name, errno);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	struct bpf_program *progs[MAX_PROGS], *prog;
	struct bpf_object *obj;
	struct utsname uts;
	int nr_progs = 0, nr_calls = (NR(getters) + NR(setters)) * NR_SIZES, cg_fd;
	char cg_path[256];

	buffer_output();
	if (argc < 2)
		fail("usage: check_progs OBJECT.bpf.o [MAPS_FILE|-]");
	page = sysconf(_SC_PAGESIZE);
	uname(&uts);
	libbpf_set_print(keep_libbpf_log);
	json_open();
	json_int("page_size", page);
	json_str("release", uts.release);
	json_str("libbpf", libbpf_version_string());

	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		program_refused("open", NULL, errno);
	json_key("programs");
	printf("[");
	bpf_object__for_each_program(prog, obj) {
		enum bpf_attach_type type = bpf_program__expected_attach_type(prog);
		int checked = bpf_program__type(prog) == BPF_PROG_TYPE_CGROUP_SOCKOPT &&
			      (type == BPF_CGROUP_GETSOCKOPT || type == BPF_CGROUP_SETSOCKOPT) &&
			      nr_progs < MAX_PROGS;

		printf("%s{\"name\": \"%s\", \"section\": \"%s\", \"checked\": %s}", prog == bpf_object__next_program(obj, NULL) ? "" : ", ",
		       bpf_program__name(prog), bpf_program__section_name(prog), checked ? "true" : "false");
		if (checked)
			progs[nr_progs++] = prog;
		else
			bpf_program__set_autoload(prog, false);    /* the next issue checks other kinds */
	}
	printf("]");
	json_need_comma = 1;
	if (bpf_object__load(obj))
		program_refused("load", NULL, errno);
	fill_maps(obj, argc > 2 ? argv[2] : "-");

	enter_private_netns();
	cg_fd = cgroup_create(NULL, "progs", cg_path, sizeof(cg_path));
	cgroup_join(cg_path);
	make_sockets();
	json_obj_open("setup");
	json_int("peergroups", nr_groups);
	for (int slot = 0; slot < 2; slot++) {
		json_obj_open(slot ? "ip6tables_filter" : "iptables_filter");
		json_bool("built", tables[slot].built);
		json_str("errno", errno_name(tables[slot].err));
		json_int("rules", tables[slot].rules);
		json_int("size", tables[slot].size);
		json_obj_close();
	}
	json_obj_close();
	print_calls();

	run_battery(results[0][0]);
	for (int i = 0; i < nr_progs; i++) {
		struct bpf_link *link = bpf_program__attach_cgroup(progs[i], cg_fd);

		if (!link)
			program_refused("attach", bpf_program__name(progs[i]), errno);
		run_battery(results[i][1]);
		bpf_link__destroy(link);
		run_battery(results[i + 1][0]);
	}
	json_key("runs");
	printf("[");
	for (int i = 0; i < nr_progs; i++) {
		printf("%s{", i ? ", " : "");
		json_need_comma = 0;
		json_str("program", bpf_program__name(progs[i]));
		print_row("without_before", results[i][0], nr_calls);
		print_row("with", results[i][1], nr_calls);
		print_row("without_after", results[i + 1][0], nr_calls);
		printf("}");
	}
	printf("]");
	json_need_comma = 1;
	json_close();
	bpf_object__close(obj);
	return 0;
}
