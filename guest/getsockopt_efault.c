/* Guest driver for the getsockopt EFAULT scenario.
 *
 *   getsockopt_efault CASE OPTLEN PROG
 *     CASE    unknown     getsockopt(SOL_SOCKET, an option nobody handles) on TCP
 *             private     setsockopt + getsockopt of the programs' own option
 *             tos         setsockopt(IP_TOS) with OPTLEN bytes, then read TOS back
 *             peergroups  getsockopt(SO_PEERGROUPS) on a unix socketpair made with
 *                         PAGE_SIZE/4 + 76 supplementary groups: the answer is longer than a page
 *     OPTLEN  bytes, or relative to the guest's page size: page, page+1, 2page
 *     PROG    none | buggy (returns 1, optlen untouched) | fixed (optlen = 0 past PAGE_SIZE)
 *
 * Prints one JSON object: what userspace saw (return, errno name, optlen, value).
 */
#include "common.h"
#include <grp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "getsockopt_efault.skel.h"

#define SO_PRIVATE_OPT 9876
#define SO_NOBODY_HANDLES 9877
#define PRIVATE_VALUE 0x5a
#define TOS_VALUE 0x10
#define EXTRA_GROUPS 76           /* past a page: 1100 groups, 4400 bytes, with 4K pages */

static struct getsockopt_efault *skel;

static void attach(int cg_fd, const char *prog_kind)
{
	struct bpf_program *get_prog = NULL;

	if (!strcmp(prog_kind, "none"))
		return;
	if (!strcmp(prog_kind, "buggy"))
		get_prog = skel->progs.get_ignores_others;
	else if (!strcmp(prog_kind, "fixed"))
		get_prog = skel->progs.get_resets_optlen;
	else
		fail("unknown PROG %s (none, buggy, fixed)", prog_kind);
	if (bpf_prog_attach(bpf_program__fd(get_prog), cg_fd, BPF_CGROUP_GETSOCKOPT, 0))
		refused("attach", bpf_program__name(get_prog), errno, "");
	/* The setsockopt side always leaves foreign options alone (the "buggy" shape). */
	if (bpf_prog_attach(bpf_program__fd(skel->progs.set_ignores_others), cg_fd, BPF_CGROUP_SETSOCKOPT, 0))
		refused("attach", "set_ignores_others", errno, "");
}

static void report(int ret, int err, socklen_t optlen)
{
	json_int("ret", ret);
	json_str("errno", ret == 0 ? "OK" : errno_name(err));
	json_int("optlen_out", optlen);
}

static void case_unknown(int optlen_in)
{
	char *buf = calloc(1, optlen_in);
	socklen_t optlen = optlen_in;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ret;

	if (fd < 0 || !buf)
		fail("socket");
	ret = getsockopt(fd, SOL_SOCKET, SO_NOBODY_HANDLES, buf, &optlen);
	report(ret, errno, optlen);
}

static void case_private(int optlen_in)
{
	char *buf = calloc(1, optlen_in);
	unsigned char value = PRIVATE_VALUE;
	socklen_t optlen = optlen_in;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ret;

	if (fd < 0 || !buf)
		fail("socket");
	ret = setsockopt(fd, SOL_SOCKET, SO_PRIVATE_OPT, &value, 1);
	json_str("set_errno", ret == 0 ? "OK" : errno_name(errno));
	ret = getsockopt(fd, SOL_SOCKET, SO_PRIVATE_OPT, buf, &optlen);
	report(ret, errno, optlen);
	json_int("value", ret == 0 && optlen >= 1 ? (unsigned char)buf[0] : -1);
}

static void case_tos(int optlen_in)
{
	char *buf = calloc(1, optlen_in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), ret, tos = 0;
	socklen_t len = sizeof(tos);

	if (fd < 0 || !buf)
		fail("socket");
	*(int *)buf = TOS_VALUE;
	ret = setsockopt(fd, IPPROTO_IP, IP_TOS, buf, optlen_in);
	json_int("ret", ret);
	json_str("errno", ret == 0 ? "OK" : errno_name(errno));
	if (getsockopt(fd, IPPROTO_IP, IP_TOS, &tos, &len))
		fail("reading IP_TOS back");
	json_int("tos_after", tos);
}

/* Enough groups for an answer longer than a page. */
static int groups_for(long page)
{
	return page / sizeof(gid_t) + EXTRA_GROUPS;
}

static void case_peergroups(int optlen_in)
{
	int nr_groups = groups_for(sysconf(_SC_PAGESIZE));
	gid_t *groups = calloc(nr_groups, sizeof(gid_t));
	char *buf = calloc(1, optlen_in);
	socklen_t optlen = optlen_in;
	int pair[2], ret;

	for (int i = 0; groups && i < nr_groups; i++)
		groups[i] = 10000 + i;
	/* Peer credentials are captured when the pair is made. */
	if (!groups || setgroups(nr_groups, groups))
		fail("setgroups(%d)", nr_groups);
	json_int("groups_set", nr_groups);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) || !buf)
		fail("socketpair");
	ret = getsockopt(pair[0], SOL_SOCKET, SO_PEERGROUPS, buf, &optlen);
	report(ret, errno, optlen);
	json_int("groups_seen", ret == 0 ? optlen / sizeof(gid_t) : -1);
	json_bool("first_group_ok", ret == 0 && ((gid_t *)buf)[0] == 10000);
}

/* OPTLEN: a number of bytes, or page, page+1, 2page (of the given page size). */
static int parse_optlen(const char *text, long page)
{
	if (!strcmp(text, "page"))
		return page;
	if (!strcmp(text, "page+1"))
		return page + 1;
	if (!strcmp(text, "2page"))
		return 2 * page;
	if (atoi(text) <= 0)
		fail("OPTLEN %s: a positive number, page, page+1 or 2page", text);
	return atoi(text);
}

int main(int argc, char **argv)
{
	char cg_path[256];
	int cg_fd, optlen_in;

	if (argc == 3 && !strcmp(argv[1], "sizes")) {    /* what a page size makes of the sizes; no BPF */
		long page = atol(argv[2]);

		json_open();
		json_int("page_size", page);
		json_int("page", parse_optlen("page", page));
		json_int("page+1", parse_optlen("page+1", page));
		json_int("2page", parse_optlen("2page", page));
		json_int("groups", groups_for(page));
		json_close();
		return 0;
	}
	if (argc != 4)
		fail("usage: %s unknown|private|tos|peergroups OPTLEN none|buggy|fixed, or sizes PAGE_SIZE", argv[0]);
	optlen_in = parse_optlen(argv[2], sysconf(_SC_PAGESIZE));
	skel = getsockopt_efault__open_and_load();
	if (!skel)
		refused("load", "getsockopt_efault.bpf.o", errno, "see stderr for the verifier log");
	cg_fd = cgroup_create(NULL, "sockopt", cg_path, sizeof(cg_path));
	attach(cg_fd, argv[3]);
	cgroup_join(cg_path);

	json_open();
	json_str("case", argv[1]);
	json_int("page_size", sysconf(_SC_PAGESIZE));
	json_int("optlen_in", optlen_in);
	json_str("prog", argv[3]);
	if (!strcmp(argv[1], "unknown"))
		case_unknown(optlen_in);
	else if (!strcmp(argv[1], "private"))
		case_private(optlen_in);
	else if (!strcmp(argv[1], "tos"))
		case_tos(optlen_in);
	else if (!strcmp(argv[1], "peergroups"))
		case_peergroups(optlen_in);
	else
		fail("unknown CASE %s", argv[1]);
	json_close();
	getsockopt_efault__destroy(skel);
	return 0;
}
