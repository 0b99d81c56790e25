/* Guest driver for the getsockopt hook's other paths.
 *
 *   getsockopt_paths sctp PROG          SCTP's options: SCTP_STATUS (the control) and the three
 *                                       sctp_bpf_bypass_getsockopt skips (PEELOFF, PEELOFF_FLAGS,
 *                                       CONNECTX3), each asked with arguments that fail
 *   getsockopt_paths uring PROG OPTLEN  SOCKET_URING_OP_GETSOCKOPT through raw io_uring syscalls:
 *                                       a probe (SO_TYPE), an option nobody handles at SOL_SOCKET
 *                                       with OPTLEN bytes (and the same through getsockopt()), and
 *                                       a SOL_IP option (IP_TOS)
 *   getsockopt_paths packet PROG        AF_PACKET (a getsockopt_iter family from v7.1): a level it
 *                                       does not know with optlen -1, and an unknown SOL_PACKET
 *                                       option with optlen in a read-only page
 *     PROG    none | count (progs/getsockopt_paths.bpf.c: counts each call, answers nothing)
 *     OPTLEN  bytes, or page, 2page (the guest's page size)
 *
 * Prints one JSON object: each call's errno name (and optlen or result) and, with a program,
 * how many times it ran for that call.
 */
#include "common.h"
#include "lib/attach.h"
#include "lib/cgroup.h"
#include "lib/net.h"
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <bpf/libbpf.h>
#include "../progs/getsockopt_paths.h"
#include "getsockopt_paths.skel.h"

static struct getsockopt_paths *skel;

/* ---- the program: counts per slot, read before and after each call ---- */

static unsigned int runs(unsigned int slot)
{
	return skel ? skel->bss->calls[slot] : 0;
}

/* One call: its errno name and, with a program, how often the program ran for its slot. */
static void report_call(const char *name, int ret, int err, unsigned int slot, unsigned int before)
{
	json_obj_open(name);
	json_str("errno", ret >= 0 ? "OK" : errno_name(err));
	if (skel)
		json_int("program_runs", runs(slot) - before);
	json_obj_close();
}

/* ---- SCTP ---- */

static void sctp_ask(int fd, const char *name, int optname, unsigned int slot)
{
	char buf[256] = {0};      /* zeroed: assoc id 0, no addresses: every option fails */
	socklen_t len = optname == PATHS_SCTP_SOCKOPT_CONNECTX3 ? 16 : optname == PATHS_SCTP_STATUS ? sizeof(buf) : 8;
	unsigned int before = runs(slot);
	int ret = getsockopt(fd, PATHS_SOL_SCTP, optname, buf, &len);

	report_call(name, ret, errno, slot, before);
}

static void case_sctp(void)
{
	int fd = try_socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP);

	json_str("socket", fd < 0 ? errno_name(-fd) : "OK");
	if (fd < 0)
		return;
	sctp_ask(fd, "status", PATHS_SCTP_STATUS, SLOT_SCTP_STATUS);
	sctp_ask(fd, "peeloff", PATHS_SCTP_SOCKOPT_PEELOFF, SLOT_SCTP_PEELOFF);
	sctp_ask(fd, "peeloff_flags", PATHS_SCTP_SOCKOPT_PEELOFF_FLAGS, SLOT_SCTP_PEELOFF_FLAGS);
	sctp_ask(fd, "connectx3", PATHS_SCTP_SOCKOPT_CONNECTX3, SLOT_SCTP_CONNECTX3);
	close(fd);
}

/* ---- io_uring, raw: one ring, one command at a time ---- */

/* struct io_uring_sqe as of v6.7 (the build root's header predates level/optname/optval) */
struct uring_sqe {
	__u8 opcode, flags;
	__u16 ioprio;
	__s32 fd;
	__u32 cmd_op, pad1;
	__u32 level, optname;
	__u32 len, uring_cmd_flags;
	__u64 user_data;
	__u16 buf_index, personality;
	__u32 optlen;
	__u64 optval, pad2;
};
_Static_assert(sizeof(struct uring_sqe) == 64, "io_uring_sqe is 64 bytes");
#define URING_OP_URING_CMD 46		/* IORING_OP_URING_CMD, v5.19 */
#define SOCKET_URING_OP_GETSOCKOPT 2

struct ring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_setup(struct ring *r)
{
	struct io_uring_params p = {0};
	char *sq, *cq;

	r->fd = syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -errno;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned int), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		fail("mapping the io_uring rings");
	r->sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)(sq + p.sq_off.array);
	r->cq_head = (unsigned int *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* SOCKET_URING_OP_GETSOCKOPT: the CQE's res (optlen on success, -errno otherwise). */
static int uring_getsockopt(struct ring *r, int sock, int level, int optname, void *optval, int optlen)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = URING_OP_URING_CMD;
	sqe->fd = sock;
	sqe->cmd_op = SOCKET_URING_OP_GETSOCKOPT;
	sqe->level = level;
	sqe->optname = optname;
	sqe->optlen = optlen;
	sqe->optval = (unsigned long)optval;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		fail("io_uring_enter returned without a completion");
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static void report_uring(const char *name, int res, unsigned int slot, unsigned int before)
{
	json_obj_open(name);
	json_str("errno", res >= 0 ? "OK" : errno_name(-res));
	json_int("res", res);
	if (skel)
		json_int("program_runs", runs(slot) - before);
	json_obj_close();
}

static void case_uring(int optlen)
{
	int fd = must_socket(AF_INET, SOCK_STREAM, 0), type = 0, tos = 0, err, ret;
	char *buf = calloc(1, optlen);
	socklen_t len = optlen;
	unsigned int before;
	struct ring r;

	err = ring_setup(&r);
	json_str("setup", errno_name(-err));
	if (err)
		return;
	err = uring_getsockopt(&r, fd, SOL_SOCKET, SO_TYPE, &type, sizeof(type));
	json_obj_open("probe");
	json_str("errno", err >= 0 ? "OK" : errno_name(-err));
	json_int("res", err);
	json_bool("so_type_is_stream", type == SOCK_STREAM);
	json_obj_close();
	before = runs(SLOT_SOCKET_UNKNOWN);
	report_uring("unknown", uring_getsockopt(&r, fd, SOL_SOCKET, PATHS_NOBODY_HANDLES, buf, optlen),
		     SLOT_SOCKET_UNKNOWN, before);
	before = runs(SLOT_SOCKET_UNKNOWN);
	ret = getsockopt(fd, SOL_SOCKET, PATHS_NOBODY_HANDLES, buf, &len);
	report_call("unknown_syscall", ret, errno, SLOT_SOCKET_UNKNOWN, before);
	before = runs(SLOT_IP);
	report_uring("ip_tos", uring_getsockopt(&r, fd, SOL_IP, IP_TOS, &tos, sizeof(tos)), SLOT_IP, before);
}

/* ---- AF_PACKET ---- */

static void case_packet(void)
{
	int fd = try_socket(AF_PACKET, SOCK_RAW, 0), ret, *ro;
	socklen_t len = -1;
	char buf[64];
	unsigned int before;

	json_str("socket", fd < 0 ? errno_name(-fd) : "OK");
	if (fd < 0)
		return;
	before = runs(SLOT_IP);
	ret = getsockopt(fd, SOL_IP, IP_TOS, buf, &len);
	report_call("other_level_negative_optlen", ret, errno, SLOT_IP, before);
	/* optlen readable, not writable: a write-back shows as EFAULT */
	ro = mmap(NULL, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED)
		fail("mmap");
	*ro = sizeof(int);
	if (mprotect(ro, sysconf(_SC_PAGESIZE), PROT_READ))
		fail("mprotect");
	before = runs(SLOT_PACKET);
	ret = getsockopt(fd, PATHS_SOL_PACKET, PATHS_PACKET_UNKNOWN, buf, (socklen_t *)ro);
	report_call("unknown_option_readonly_optlen", ret, errno, SLOT_PACKET, before);
	close(fd);
}

/* ---- set-up ---- */

static int parse_optlen(const char *text)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!strcmp(text, "page"))
		return page;
	if (!strcmp(text, "2page"))
		return 2 * page;
	if (atoi(text) <= 0)
		fail("OPTLEN %s: a positive number, page or 2page", text);
	return atoi(text);
}

/* The program (PROG count) attached to a cgroup of our own, the driver in it. */
static void enter_cgroup(const char *prog)
{
	char cg_path[256];
	int cg_fd, err;

	enter_private_netns();
	cg_fd = cgroup_create(NULL, "paths", cg_path, sizeof(cg_path));
	if (!strcmp(prog, "count")) {
		skel = getsockopt_paths__open_and_load();
		if (!skel)
			refused("load", "getsockopt_paths.bpf.o", errno, "see stderr for the verifier log");
		err = attach(skel->progs.count_and_ignore, cg_fd, ATTACH_FLAGS(0));
		if (err)
			refused("attach", "count_and_ignore", err, "");
	}
	cgroup_join(cg_path);
	json_open();
	json_str("prog", prog);
	json_int("page_size", sysconf(_SC_PAGESIZE));
}

static void run_sctp(char **argv) { enter_cgroup(argv[1]); case_sctp(); json_close(); }
static void run_packet(char **argv) { enter_cgroup(argv[1]); case_packet(); json_close(); }

static void run_uring(char **argv)
{
	int optlen = parse_optlen(argv[2]);

	enter_cgroup(argv[1]);
	json_int("optlen_in", optlen);
	case_uring(optlen);
	json_close();
}

#define PROGS "none|count"
static const struct driver_case cases[] = {
	{ "sctp", { PROGS }, run_sctp },
	{ "packet", { PROGS }, run_packet },
	{ "uring", { PROGS, "OPTLEN" }, run_uring },
};

int main(int argc, char **argv)
{
	pick_case("getsockopt_paths", cases, NR_CASES(cases), argc, argv)->run(argv + 1);
	if (skel)
		getsockopt_paths__destroy(skel);
	return 0;
}
