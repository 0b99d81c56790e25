/* Guest driver for the cgroup sockopt contract scenario: one case per rule of
 * Documentation/bpf/prog_cgroup_sockopt.rst.
 *
 *   sockopt_contract reject            programs returning 0 (EPERM, or the kernel's error)
 *   sockopt_contract optlen_minus_one  setsockopt optlen = -1 in a child, an observer in the parent
 *   sockopt_contract optlen_raise      optlen raised above the caller's, both hooks
 *   sockopt_contract retval            getsockopt programs setting ctx->retval
 *   sockopt_contract large             optval larger than PAGE_SIZE, both hooks
 *   sockopt_contract inheritance get|set   parent A and child B, BPF_F_ALLOW_MULTI
 *   sockopt_contract preorder get|set      A on the parent with BPF_F_PREORDER (probed)
 *   sockopt_contract mprog get|set         A attached BPF_F_BEFORE B in one cgroup (probed)
 *   sockopt_contract race CYCLES       attach/detach the first getsockopt program while a
 *                                      thread calls getsockopt: spurious EFAULTs counted
 *
 * Prints one JSON object; option values are ints, errnos are names ("OK" for success).
 */
#include "common.h"
#include "lib/attach.h"
#include "lib/cgroup.h"
#include "lib/net.h"
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <bpf/libbpf.h>
#include "sockopt_contract.skel.h"

/* The programs' ids, in the order of the enum in progs/sockopt_contract.bpf.c. */
static const char *const PROG_NAMES[] = {
	"get_reject", "set_reject", "set_skip_kernel", "set_a", "set_b", "get_a", "get_b", "set_raise",
	"get_raise", "get_set_retval", "get_answer_unknown", "set_large", "get_large", "get_pass",
};
enum { GET_REJECT, SET_REJECT, SET_SKIP_KERNEL, SET_A, SET_B, GET_A, GET_B, SET_RAISE, GET_RAISE,
       GET_SET_RETVAL, GET_ANSWER_UNKNOWN, SET_LARGE, GET_LARGE, GET_PASS, NR_PROGS };

#define SO_NOBODY_HANDLES 9877
#define TOS_BY_USER 0x10
#define TOS_BY_PROG 0x20
#define TOS_BY_CHILD 0x30
#define ANSWER_BY_PROG 0x77
#define LEAVE_OPTLEN (-2)

static struct sockopt_contract *skel;
static int parent_fd, child_fd;
static char parent_path[256], child_path[256];

static void reset_counters(void)
{
	memset(skel->bss->runs, 0, sizeof(skel->bss->runs));
	memset(skel->bss->order, 0, sizeof(skel->bss->order));
	skel->bss->order_len = 0;
	for (int i = 0; i < NR_PROGS; i++)
		skel->bss->seen_value[i] = skel->bss->seen_optlen[i] = -1;
}

/* Attached with BPF_F_ALLOW_MULTI, or the kernel's refusal is the result. */
static void attach_multi(int cg, struct bpf_program *prog)
{
	int err = attach(prog, cg, ATTACH_FLAGS(BPF_F_ALLOW_MULTI));

	if (err)
		refused("attach", bpf_program__name(prog), err, "");
}

static void must_detach(int cg, struct bpf_program *prog)
{
	errno = detach(prog, cg);
	if (errno)
		fail("detach %s", bpf_program__name(prog));
}

static void json_order(const char *key)
{
	char text[256] = "";
	__u32 n = skel->bss->order_len;

	for (__u32 i = 0; i < n && i < 16; i++) {
		__u32 id = skel->bss->order[i];

		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s", i ? "," : "",
			 id < NR_PROGS ? PROG_NAMES[id] : "?");
	}
	json_str(key, text);
}

static int tcp_socket(void)
{
	return must_socket(AF_INET, SOCK_STREAM, 0);
}

/* setsockopt(IP_TOS) from a buffer of optlen bytes starting with value; 0 or errno */
static int set_tos(int fd, int value, int optlen)
{
	char *buf = calloc(1, optlen < 4 ? 4 : optlen);
	int ret;

	if (!buf)
		fail("calloc");
	memcpy(buf, &value, sizeof(value));
	ret = setsockopt(fd, IPPROTO_IP, IP_TOS, buf, optlen) ? errno : 0;
	free(buf);
	return ret;
}

/* getsockopt of an int option with an optlen-byte buffer; the value (-1 if none) */
static int get_int(int fd, int level, int optname, int optlen, int *value, int *optlen_out)
{
	char *buf = calloc(1, optlen < 4 ? 4 : optlen);
	socklen_t len = optlen;
	int ret;

	if (!buf)
		fail("calloc");
	ret = getsockopt(fd, level, optname, buf, &len) ? errno : 0;
	*value = ret ? -1 : *(int *)buf;
	if (optlen_out)
		*optlen_out = len;
	free(buf);
	return ret;
}

/* The TOS the kernel holds, read with no getsockopt program in the way. */
static int tos_now(int fd)
{
	int value;

	if (get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL))
		fail("reading IP_TOS back");
	return value;
}

static void case_reject(char **argv)
{
	int fd = tcp_socket(), value;

	json_str("kernel_error_alone", errno_name(get_int(fd, SOL_SOCKET, SO_NOBODY_HANDLES, 4, &value, NULL)));
	attach_multi(child_fd, skel->progs.get_reject);
	reset_counters();
	json_str("get_valid_option", errno_name(get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL)));
	json_str("get_kernel_error", errno_name(get_int(fd, SOL_SOCKET, SO_NOBODY_HANDLES, 4, &value, NULL)));
	json_int("get_reject_runs", skel->bss->runs[GET_REJECT]);
	must_detach(child_fd, skel->progs.get_reject);
	attach_multi(child_fd, skel->progs.set_reject);
	json_str("set_valid_option", errno_name(set_tos(fd, TOS_BY_USER, 4)));
	json_int("tos_after_set", tos_now(fd));
}

static void case_optlen_minus_one(char **argv)
{
	int fd = tcp_socket();

	attach_multi(parent_fd, skel->progs.set_a);
	attach_multi(child_fd, skel->progs.set_skip_kernel);
	reset_counters();
	json_str("set", errno_name(set_tos(fd, TOS_BY_USER, 4)));
	json_int("tos_after", tos_now(fd));
	json_order("order");
	json_int("parent_saw_optlen", skel->bss->seen_optlen[SET_A]);
}

static void case_optlen_raise(char **argv)
{
	int fd = tcp_socket(), value;

	attach_multi(child_fd, skel->progs.set_raise);
	skel->bss->raise_by = 4;     /* 4 -> 8: within the 16 bytes the kernel allocates anyway */
	json_str("set_4_raised_to_8", errno_name(set_tos(fd, TOS_BY_USER, 4)));
	skel->bss->raise_by = 13;    /* 4 -> 17 */
	json_str("set_4_raised_to_17", errno_name(set_tos(fd, TOS_BY_USER, 4)));
	skel->bss->raise_by = 1;     /* 16 -> 17 */
	json_str("set_16_raised_to_17", errno_name(set_tos(fd, TOS_BY_USER, 16)));
	must_detach(child_fd, skel->progs.set_raise);
	attach_multi(child_fd, skel->progs.get_raise);
	json_str("get_4_raised_to_5", errno_name(get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL)));
}

static void case_retval(char **argv)
{
	int fd = tcp_socket(), value, optlen;

	attach_multi(child_fd, skel->progs.get_set_retval);
	skel->bss->new_retval = -EINVAL;
	json_str("retval_set_to_einval", errno_name(get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL)));
	skel->bss->new_retval = 0;
	json_str("retval_set_to_0", errno_name(get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL)));
	must_detach(child_fd, skel->progs.get_set_retval);
	attach_multi(child_fd, skel->progs.get_answer_unknown);
	skel->bss->rewrite_value = ANSWER_BY_PROG;
	json_str("kernel_error_replaced", errno_name(get_int(fd, SOL_SOCKET, SO_NOBODY_HANDLES, 4, &value, &optlen)));
	json_int("replaced_value", value);
	json_int("replaced_optlen", optlen);
}

/* SO_PEERGROUPS of a unix pair made with `groups` supplementary groups */
static int peer_pair(int groups)
{
	int pair[2];

	set_peer_groups(groups);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair))
		fail("socketpair");
	return pair[0];
}

static void case_large(char **argv)
{
	static const struct { const char *name; int optlen; } modes[] = {
		{ "optlen_zero", 0 }, { "optlen_trimmed", 8 }, { "optlen_untouched", LEAVE_OPTLEN },
	};
	int page = sysconf(_SC_PAGESIZE), big = 2 * page, groups = page / 4 + 100;
	int peer = peer_pair(groups), value, optlen;
	char key[64];

	json_int("page_size", page);
	json_int("user_optlen", big);
	json_int("kernel_answer_bytes", groups * 4);
	attach_multi(child_fd, skel->progs.set_large);
	attach_multi(child_fd, skel->progs.get_large);
	skel->bss->rewrite_value = TOS_BY_PROG;
	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int fd = tcp_socket();

		skel->bss->large_optlen = modes[i].optlen;
		snprintf(key, sizeof(key), "set_%s", modes[i].name);
		json_obj_open(key);
		json_str("errno", errno_name(set_tos(fd, TOS_BY_USER, big)));
		json_int("tos", tos_now(fd));
		json_obj_close();
		close(fd);
		snprintf(key, sizeof(key), "get_%s", modes[i].name);
		json_obj_open(key);
		json_str("errno", errno_name(get_int(peer, SOL_SOCKET, SO_PEERGROUPS, big, &value, &optlen)));
		json_int("optlen", optlen);
		json_int("first_group", value);
		json_obj_close();
	}
}

/* Attach A and B as the case asks, trigger the hook once, report what ran. */
static void run_pair(const char *hook, const char *how)
{
	int set = !strcmp(hook, "set");
	struct bpf_program *a = set ? skel->progs.set_a : skel->progs.get_a;
	struct bpf_program *b = set ? skel->progs.set_b : skel->progs.get_b;
	int fd = tcp_socket(), err = 0, value;

	if (!set && set_tos(fd, TOS_BY_USER, 4))
		fail("setting IP_TOS before the programs");
	if (!strcmp(how, "inheritance")) {
		attach_multi(parent_fd, a);
		attach_multi(child_fd, b);
	} else if (!strcmp(how, "preorder")) {
		attach_multi(child_fd, b);
		err = attach(a, parent_fd, ATTACH_FLAGS(BPF_F_ALLOW_MULTI | ATTACH_F_PREORDER));
	} else {	/* mprog */
		attach_multi(child_fd, b);
		err = attach(a, child_fd, ATTACH_BEFORE(b));
	}
	json_str("hook", hook);
	json_bool("supported", !err);
	json_str("attach_errno", errno_name(err));
	skel->bss->rewrite_value = TOS_BY_CHILD;
	reset_counters();
	if (set) {
		json_str("errno", errno_name(set_tos(fd, TOS_BY_USER, 4)));
		json_int("value_seen_by_a", skel->bss->seen_value[SET_A]);
		json_order("order");
		json_int("tos_after", tos_now(fd));
	} else {
		json_str("errno", errno_name(get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL)));
		json_int("value_seen_by_a", skel->bss->seen_value[GET_A]);
		json_order("order");
		json_int("value_returned", value);
	}
}

/* ---- race: getsockopt in flight while the first getsockopt program comes and goes ---- */
static volatile int stop_calls;
static long calls, efaults, other_errors;

static void *call_getsockopt(void *arg)
{
	int fd = tcp_socket(), value;

	while (!stop_calls) {
		int err = get_int(fd, IPPROTO_IP, IP_TOS, 4, &value, NULL);

		calls++;
		if (err == EFAULT)
			efaults++;
		else if (err)
			other_errors++;
	}
	return NULL;
}

static void case_race(char **argv)
{
	int cycles = atoi(argv[1]);
	pthread_t thread;

	if (pthread_create(&thread, NULL, call_getsockopt, NULL))
		fail("pthread_create");
	for (int i = 0; i < cycles; i++) {
		usleep(200);
		errno = attach(skel->progs.get_pass, child_fd, ATTACH_FLAGS(0));
		if (errno)
			fail("attach get_pass");
		usleep(200);
		must_detach(child_fd, skel->progs.get_pass);
	}
	stop_calls = 1;
	pthread_join(thread, NULL);
	json_int("cycles", cycles);
	json_int("calls", calls);
	json_int("efaults", efaults);
	json_int("other_errors", other_errors);
}

static void case_pair(char **argv) { run_pair(argv[1], argv[0]); }

static const struct driver_case cases[] = {
	{ "reject", {}, case_reject },
	{ "optlen_minus_one", {}, case_optlen_minus_one },
	{ "optlen_raise", {}, case_optlen_raise },
	{ "retval", {}, case_retval },
	{ "large", {}, case_large },
	{ "inheritance", { "get|set" }, case_pair },
	{ "preorder", { "get|set" }, case_pair },
	{ "mprog", { "get|set" }, case_pair },
	{ "race", { "CYCLES" }, case_race },
};

int main(int argc, char **argv)
{
	const struct driver_case *picked = pick_case("sockopt_contract", cases, NR_CASES(cases), argc, argv);

	skel = sockopt_contract__open_and_load();
	if (!skel)
		refused("load", "sockopt_contract.bpf.o", errno, "see stderr for the verifier log");
	if (sizeof(skel->bss->runs) / sizeof(skel->bss->runs[0]) != NR_PROGS)
		fail("program ids differ between the driver and progs/sockopt_contract.bpf.c");
	parent_fd = cgroup_create(NULL, "contract", parent_path, sizeof(parent_path));
	child_fd = cgroup_create(parent_path, "child", child_path, sizeof(child_path));
	cgroup_join(child_path);

	json_open();
	json_str("case", picked->name);
	picked->run(argv + 1);
	json_close();
	sockopt_contract__destroy(skel);
	return 0;
}
