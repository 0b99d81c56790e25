/* check_progs' battery: the getsockopt and setsockopt calls, each at every size, run on
 * the sockets; what each answered, and the list of calls, printed. */
#include "driver.h"

#include <netinet/tcp.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <linux/if_packet.h>

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
	OPT(UNIX_MID, SOL_SOCKET, SO_PEERGROUPS, 0, PLAIN),
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

/* A getter on a socket this guest does not make (UNIX_MID on 4K pages) is not in the battery. */
static int in_battery(const struct option_spec *spec)
{
	return socks[spec->sock] >= 0;
}

int battery_calls(void)
{
	int n = NR(setters);

	for (int i = 0; i < NR(getters); i++)
		n += in_battery(&getters[i]);
	return n * NR_SIZES;
}

static int natural_size(const struct option_spec *spec)
{
	if (spec->request == IPT_ENTRIES)
		return ipt_natural(spec->sock == RAW6);
	if (spec->optname == SO_PEERGROUPS && spec->level == SOL_SOCKET)
		return (spec->sock == UNIX_MID ? nr_mid_groups : nr_groups) * sizeof(gid_t);
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

void run_battery(struct outcome *row)
{
	static unsigned char *buf;
	int n = 0;

	if (!buf)
		buf = malloc(2 * page + 64);
	for (int i = 0; i < NR(getters); i++)
		for (int s = 0; s < NR_SIZES && in_battery(&getters[i]); s++)
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

void print_calls(void)
{
	int first = 1;

	json_key("calls");
	printf("[");
	for (int i = 0; i < NR(getters); i++)
		for (int s = 0; s < NR_SIZES && in_battery(&getters[i]); s++) {
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

void print_row(const char *key, const struct outcome *row, int n)
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

