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
#include "lib/attach.h"
#include "lib/cgroup.h"
#include "lib/net.h"
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <bpf/libbpf.h>
#include "../progs/getsockopt_efault.h"
#include "getsockopt_efault.skel.h"

#define EXTRA_GROUPS 76           /* past a page: 1100 groups, 4400 bytes, with 4K pages */

static struct getsockopt_efault *skel;

static void attach_or_refused(struct bpf_program *prog, int cg_fd)
{
	int err = attach(prog, cg_fd, ATTACH_FLAGS(0));

	if (err)
		refused("attach", bpf_program__name(prog), err, "");
}

static void attach_kind(int cg_fd, const char *prog_kind)
{
	if (!strcmp(prog_kind, "none"))
		return;
	attach_or_refused(!strcmp(prog_kind, "buggy") ? skel->progs.get_ignores_others : skel->progs.get_resets_optlen,
			  cg_fd);
	/* The setsockopt side always leaves foreign options alone (the "buggy" shape). */
	attach_or_refused(skel->progs.set_ignores_others, cg_fd);
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
	char *buf = calloc(1, optlen_in);
	socklen_t optlen = optlen_in;
	int pair[2], ret;

	/* Peer credentials are captured when the pair is made. */
	set_peer_groups(nr_groups);
	json_int("groups_set", nr_groups);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) || !buf)
		fail("socketpair");
	ret = getsockopt(pair[0], SOL_SOCKET, SO_PEERGROUPS, buf, &optlen);
	report(ret, errno, optlen);
	json_int("groups_seen", ret == 0 ? optlen / sizeof(gid_t) : -1);
	json_bool("first_group_ok", ret == 0 && ((gid_t *)buf)[0] == FIRST_PEER_GROUP);
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

/* What a page size makes of the sizes; no BPF. */
static void case_sizes(char **argv)
{
	long page = atol(argv[1]);

	json_open();
	json_int("page_size", page);
	json_int("page", parse_optlen("page", page));
	json_int("page+1", parse_optlen("page+1", page));
	json_int("2page", parse_optlen("2page", page));
	json_int("groups", groups_for(page));
	json_close();
}

/* argv: CASE OPTLEN PROG; the program (if any) attached, the driver in its cgroup. */
static void observe(char **argv, void (*observe_case)(int optlen_in))
{
	char cg_path[256];
	int cg_fd, optlen_in;

	optlen_in = parse_optlen(argv[1], sysconf(_SC_PAGESIZE));
	skel = getsockopt_efault__open();
	if (!skel)
		fail("opening the getsockopt_efault skeleton");
	skel->rodata->page_size = sysconf(_SC_PAGESIZE);
	if (getsockopt_efault__load(skel))
		refused("load", "getsockopt_efault.bpf.o", errno, "see stderr for the verifier log");
	cg_fd = cgroup_create(NULL, "sockopt", cg_path, sizeof(cg_path));
	attach_kind(cg_fd, argv[2]);
	cgroup_join(cg_path);

	json_open();
	json_str("case", argv[0]);
	json_int("page_size", sysconf(_SC_PAGESIZE));
	json_int("prog_page_size", skel->rodata->page_size);      /* the threshold the fixed program uses */
	json_int("private_value", PRIVATE_VALUE);
	json_int("tos_value", TOS_VALUE);
	json_int("optlen_in", optlen_in);
	json_str("prog", argv[2]);
	observe_case(optlen_in);
	json_close();
	getsockopt_efault__destroy(skel);
}

static void run_unknown(char **argv) { observe(argv, case_unknown); }
static void run_private(char **argv) { observe(argv, case_private); }
static void run_tos(char **argv) { observe(argv, case_tos); }
static void run_peergroups(char **argv) { observe(argv, case_peergroups); }

#define PROG_KINDS "none|buggy|fixed"
static const struct driver_case cases[] = {
	{ "unknown", { "OPTLEN", PROG_KINDS }, run_unknown },
	{ "private", { "OPTLEN", PROG_KINDS }, run_private },
	{ "tos", { "OPTLEN", PROG_KINDS }, run_tos },
	{ "peergroups", { "OPTLEN", PROG_KINDS }, run_peergroups },
	{ "sizes", { "PAGE_SIZE" }, case_sizes },
};

int main(int argc, char **argv)
{
	pick_case("getsockopt_efault", cases, NR_CASES(cases), argc, argv)->run(argv + 1);
	return 0;
}
