/* lsm_priority <case>: per-cgroup SO_PRIORITY and socket policy with lsm_cgroup,
 * observed from userspace with getsockopt(SO_PRIORITY) and socket()/bind() errnos.
 *
 * Cases (see docs/lsm_priority.md):
 *   probe        only whether the kernel accepts an lsm_cgroup program
 *   post_create  socket_post_create sets the priority in its cgroup, not in a sibling
 *   accept       accepted sockets need inet_csk_clone, whichever cgroup calls accept()
 *   whose_cgroup whether a hook runs the programs of the socket's or the task's cgroup
 *   compare      cgroup/sock vs lsm_cgroup on active, accepted and AF_PACKET sockets
 *   override     a cgroup/setsockopt guard stops the task, not bpf_setsockopt
 *   net_raw_xmit AF_PACKET send-only policy and an errno chosen with bpf_set_retval
 *   hierarchy    programs on parent and child cgroups: order and last writer
 *   detach       destroying the links removes every effect
 *   shim_lifetime a socket right after the hook's last link is destroyed, and right
 *                after a program is attached again (the hook's shim may outlive it)
 *
 * Every case first checks that the kernel takes lsm_cgroup at all; when it does not
 * (5.10), it prints {"lsm_cgroup_supported": false, "stage": ..., "load_errno": ...}
 * and exits 0: that is an observation, not a set-up failure.
 */
#include "common.h"

#include <sched.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../progs/lsm_priority.h"
#include "lsm_priority.skel.h"

/* Distinct from each other and from 0 (the default), so a value names who set it. */
#define PRIO		7	/* the cgroup under test */
#define SOCK_PRIO	5	/* cgroup/sock_create in the comparison */
#define PARENT_PRIO	3	/* parent cgroup in the hierarchy case */
#define TASK_PRIO	1	/* what the task tries to set itself */
#define ANCHOR_PRIO	2	/* the hierarchy case's anchor, on a cgroup of its own */
#define LIFETIME_ROUNDS	10	/* per scheduling policy in the shim_lifetime case */

static const char *case_name;

/* ---- libbpf: its messages go to stderr; the first error line is kept for the JSON ---- */
static char libbpf_first_warn[200];

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (level == LIBBPF_WARN && !libbpf_first_warn[0]) {
		size_t n = strcspn(line, "\n");

		if (n >= sizeof(libbpf_first_warn))
			n = sizeof(libbpf_first_warn) - 1;
		memcpy(libbpf_first_warn, line, n);
		libbpf_first_warn[n] = 0;
	}
	return fputs(line, stderr);
}

/* ---- skeleton instances: one per priority value, only the named programs loaded ---- */
static struct lsm_priority *open_instance(__u32 prio)
{
	struct lsm_priority *skel = lsm_priority__open();
	struct bpf_program *prog;

	if (!skel)
		fail("opening the lsm_priority skeleton");
	skel->rodata->prio = prio;
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	return skel;
}

/* An instance with only the named programs loaded (NULL-terminated list). */
static struct lsm_priority *load_instance(__u32 prio, ...)
{
	struct lsm_priority *skel = open_instance(prio);
	struct bpf_program *prog;
	const char *name;
	va_list ap;

	va_start(ap, prio);
	while ((name = va_arg(ap, const char *))) {
		prog = bpf_object__find_program_by_name(skel->obj, name);
		if (!prog)
			fail("no program %s in lsm_priority.bpf.c", name);
		bpf_program__set_autoload(prog, true);
	}
	va_end(ap);
	if (lsm_priority__load(skel))
		refused("load", case_name, errno, libbpf_first_warn);
	return skel;
}

static struct bpf_link *attach(struct bpf_program *prog, int cgroup_fd)
{
	/* For lsm_cgroup this is BPF_LINK_CREATE with BPF_LSM_CGROUP: programs on
	 * one cgroup and hook stack up (multi-attach), nothing is replaced. */
	struct bpf_link *link = bpf_program__attach_cgroup(prog, cgroup_fd);

	if (!link)
		refused("attach", bpf_program__name(prog), errno, libbpf_first_warn);
	return link;
}

/* The clone witness (a plain BPF LSM program) sees every inet_csk_clone call, so
 * each handshake's context is known even when no lsm_cgroup program ran for it. */
static struct bpf_link *attach_clone_witness(struct lsm_priority *skel)
{
	struct bpf_link *link = bpf_program__attach_lsm(skel->progs.clone_witness);

	if (!link)
		refused("attach", "clone_witness", errno, libbpf_first_warn);
	return link;
}

static unsigned long long cgroup_id_of(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		fail("stat %s", path);
	return st.st_ino;	/* cgroup v2: the directory's inode number is the cgroup id */
}

/* Each inet_csk_clone call: whose task (this driver or not) and which cgroup, by name
 * among the case's cgroups ("root" or "elsewhere" otherwise). */
static void print_clone_contexts(struct lsm_priority *skel, const char *names[], const char *paths[], int n)
{
	__u32 calls = skel->bss->clone_calls;

	json_int("clone_calls", calls);
	json_arr_open("clone_contexts");
	for (__u32 i = 0; i < calls && i < CLONE_CONTEXTS; i++) {
		const struct clone_context *seen = &skel->bss->clone_contexts[i];
		const char *where = seen->cgroup_id == cgroup_id_of(CGROUP_ROOT) ? "root" : "elsewhere";

		for (int k = 0; k < n; k++)
			if (seen->cgroup_id == cgroup_id_of(paths[k]))
				where = names[k];
		json_elem_obj_open();
		json_bool("driver_task", seen->tgid == (__u32)getpid());
		json_str("cgroup", where);
		json_str("comm", seen->comm);
		json_obj_close();
	}
	json_arr_close();
}

/* ---- sockets ---- */

/* socket() that gives -errno instead of -1, for the cases where refusal is the point */
static int try_socket(int family, int type, int protocol)
{
	int fd = socket(family, type, protocol);

	return fd < 0 ? -errno : fd;
}

static int must_socket(int family, int type, int protocol)
{
	int fd = socket(family, type, protocol);

	if (fd < 0)
		fail("socket(%d, %d, %d)", family, type, protocol);
	return fd;
}

/* "OK" or the errno name for a socket() attempt; closes what it got. */
static const char *socket_result(int family, int type, int protocol)
{
	int fd = try_socket(family, type, protocol);

	if (fd < 0)
		return errno_name(-fd);
	close(fd);
	return "OK";
}

static int prio_of(int fd)
{
	int prio = -1;
	socklen_t len = sizeof(prio);

	if (getsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, &len))
		fail("getsockopt(SO_PRIORITY)");
	return prio;
}

/* Priority of a fresh socket (closed again). */
static int new_socket_prio(int family, int type, int protocol)
{
	int fd = must_socket(family, type, protocol);
	int prio = prio_of(fd);

	close(fd);
	return prio;
}

static int tcp_listener(unsigned short *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = must_socket(AF_INET, SOCK_STREAM, 0);

	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&addr, &len))
		fail("TCP listener on 127.0.0.1");
	*port = ntohs(addr.sin_port);
	return fd;
}

static int tcp_connect(unsigned short port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = must_socket(AF_INET, SOCK_STREAM, 0);

	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("connect to 127.0.0.1:%u", port);
	return fd;
}

static int tcp_accept(int listen_fd)
{
	int fd = accept(listen_fd, NULL, NULL);

	if (fd < 0)
		fail("accept");
	return fd;
}

static const char *packet_bind(int fd, unsigned short protocol)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(protocol),
				   .sll_ifindex = if_nametoindex("lo") };

	return bind(fd, (struct sockaddr *)&sll, sizeof(sll)) ? errno_name(errno) : "OK";
}

/* ---- output: every case prints the same header, then its own values ---- */
static void begin_output(void)
{
	char lsms[256] = "";
	FILE *f = fopen("/sys/kernel/security/lsm", "r");

	if (f) {
		if (!fgets(lsms, sizeof(lsms), f))
			lsms[0] = 0;
		fclose(f);
	}
	lsms[strcspn(lsms, "\n")] = 0;
	json_open();
	json_str("case", case_name);
	json_bool("lsm_cgroup_supported", 1);
	json_str("active_lsms", lsms);
}

/* ---- the cases ---- */

/* Before anything else: does this kernel take an lsm_cgroup program at all? A
 * refusal (load or attach) is the result on kernels before 69fd337a975c. */
static void probe_lsm_cgroup(void)
{
	struct lsm_priority *skel = open_instance(0);
	const char *stage = "load";
	struct bpf_link *link = NULL;
	int err, cg;

	bpf_program__set_autoload(skel->progs.probe, true);
	err = lsm_priority__load(skel);
	if (!err) {
		stage = "attach";
		cg = cgroup_create(NULL, "probe", NULL, 0);
		link = bpf_program__attach_cgroup(skel->progs.probe, cg);
		err = link ? 0 : -errno;
		close(cg);
	}
	if (err) {
		json_open();
		json_str("case", case_name);
		json_bool("lsm_cgroup_supported", 0);
		json_str("stage", stage);
		json_str("load_errno", errno_name(-err));
		json_str("libbpf", libbpf_first_warn);
		json_close();
		exit(0);
	}
	bpf_link__destroy(link);
	lsm_priority__destroy(skel);
}

static void case_probe(void)
{
	begin_output();
	json_close();
}

/* 1. The priority reaches every socket created in the cgroup, and only there. */
static void case_post_create(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", NULL);
	char cg_path[256], sibling_path[256];
	int cg = cgroup_create(NULL, "prio", cg_path, sizeof(cg_path));
	int tcp, udp6, unix_, sib_tcp, sib_udp6, sib_unix;
	struct bpf_link *link;

	cgroup_create(NULL, "sibling", sibling_path, sizeof(sibling_path));
	link = attach(skel->progs.prio_post_create, cg);

	cgroup_join(cg_path);
	tcp = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	udp6 = new_socket_prio(AF_INET6, SOCK_DGRAM, 0);
	unix_ = new_socket_prio(AF_UNIX, SOCK_STREAM, 0);
	cgroup_join(sibling_path);
	sib_tcp = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	sib_udp6 = new_socket_prio(AF_INET6, SOCK_DGRAM, 0);
	sib_unix = new_socket_prio(AF_UNIX, SOCK_STREAM, 0);

	begin_output();
	json_int("prio_set", PRIO);
	json_obj_open("in_cgroup");
	json_int("tcp", tcp);
	json_int("udp6", udp6);
	json_int("unix", unix_);
	json_obj_close();
	json_obj_open("sibling");
	json_int("tcp", sib_tcp);
	json_int("udp6", sib_udp6);
	json_int("unix", sib_unix);
	json_obj_close();
	json_int("runs", skel->bss->post_create_runs);
	json_str("bpf_setsockopt", errno_name(-skel->bss->post_create_ret));
	json_close();
	bpf_link__destroy(link);
	lsm_priority__destroy(skel);
}

/* 2. Accepted sockets. The listener is created before anything is attached, so its
 * priority is 0: sk_clone copies the listener's priority into the child, and a
 * non-zero listener would hide whether any hook ran for the child.
 * connect() runs in the server cgroup throughout: on loopback the handshake, and
 * so inet_csk_clone, runs in the connecting task's context, and which cgroup that
 * puts in charge is the separate question of case_whose_cgroup. */
static void case_accept(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "prio_clone", "clone_witness", NULL);
	char server_path[256], other_path[256];
	int server_cg = cgroup_create(NULL, "server", server_path, sizeof(server_path));
	int listen_fd, listener, c1, a1, c2, a2, c3, a3, post_runs;
	struct bpf_link *post, *clone, *witness;
	unsigned short port;

	cgroup_create(NULL, "other", other_path, sizeof(other_path));
	enter_private_netns();
	cgroup_join(server_path);
	listen_fd = tcp_listener(&port);
	listener = prio_of(listen_fd);

	witness = attach_clone_witness(skel);
	post = attach(skel->progs.prio_post_create, server_cg);
	c1 = tcp_connect(port);
	a1 = tcp_accept(listen_fd);
	post_runs = skel->bss->post_create_runs;	/* 1: the client only */

	clone = attach(skel->progs.prio_clone, server_cg);
	c2 = tcp_connect(port);
	a2 = tcp_accept(listen_fd);
	c3 = tcp_connect(port);
	cgroup_join(other_path);
	a3 = tcp_accept(listen_fd);	/* accept() from a cgroup with no programs */

	begin_output();
	json_int("prio_set", PRIO);
	json_int("listener", listener);
	json_obj_open("post_create_only");
	json_int("client", prio_of(c1));
	json_int("accepted", prio_of(a1));
	json_int("post_create_runs", post_runs);
	json_obj_close();
	json_obj_open("with_inet_csk_clone");
	json_int("client", prio_of(c2));
	json_int("accepted", prio_of(a2));
	json_int("accepted_from_other_cgroup", prio_of(a3));
	json_int("clone_runs", skel->bss->clone_runs);
	json_str("bpf_setsockopt", errno_name(-skel->bss->clone_ret));
	json_obj_close();
	print_clone_contexts(skel, (const char *[]){ "server", "other" }, (const char *[]){ server_path, other_path }, 2);
	json_close();
	close(c3);
	bpf_link__destroy(witness);
	bpf_link__destroy(clone);
	bpf_link__destroy(post);
	lsm_priority__destroy(skel);
}

/* 2b. Whose cgroup's programs run: the socket's or the current task's? 69fd337a975c
 * says hooks whose first argument is a struct socket or struct sock use the
 * socket's cgroup (so the clone of a listener would follow the listener), the
 * rest use current's. Tell them apart where the two differ:
 *  - socket_bind (struct socket *): an AF_PACKET socket made in one cgroup and
 *    bound while the task is in the other, both ways round;
 *  - inet_csk_clone (struct sock *): the listener in the server cgroup, the
 *    handshake driven by connect() from either cgroup (on loopback it completes
 *    in the connecting task's context). */
static void case_whose_cgroup(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_clone", "raw_xmit_bind", "clone_witness", NULL);
	char server_path[256], other_path[256];
	int server_cg = cgroup_create(NULL, "server", server_path, sizeof(server_path));
	int listen_fd, from_server_fd, from_other_fd, c1, a1, c2, a2;
	const char *bind_sock_server, *bind_sock_other;
	struct bpf_link *bind_link, *clone, *witness;
	unsigned short port;
	__u32 runs_server;

	cgroup_create(NULL, "other", other_path, sizeof(other_path));
	enter_private_netns();
	bind_link = attach(skel->progs.raw_xmit_bind, server_cg);

	cgroup_join(other_path);
	from_other_fd = must_socket(AF_PACKET, SOCK_RAW, 0);
	cgroup_join(server_path);
	from_server_fd = must_socket(AF_PACKET, SOCK_RAW, 0);
	bind_sock_other = packet_bind(from_other_fd, ETH_P_ALL);	/* task in server */
	cgroup_join(other_path);
	bind_sock_server = packet_bind(from_server_fd, ETH_P_ALL);	/* task in other */
	close(from_other_fd);
	close(from_server_fd);

	cgroup_join(server_path);
	listen_fd = tcp_listener(&port);	/* before the clone program: priority 0 */
	witness = attach_clone_witness(skel);
	clone = attach(skel->progs.prio_clone, server_cg);
	c1 = tcp_connect(port);
	a1 = tcp_accept(listen_fd);
	runs_server = skel->bss->clone_runs;
	cgroup_join(other_path);
	c2 = tcp_connect(port);
	a2 = tcp_accept(listen_fd);

	begin_output();
	json_int("prio_set", PRIO);
	json_obj_open("socket_bind_denied_in_server");
	json_str("socket_from_server_bound_from_other", bind_sock_server);
	json_str("socket_from_other_bound_from_server", bind_sock_other);
	json_obj_close();
	json_obj_open("inet_csk_clone_on_server_listener");
	json_int("handshake_from_server", prio_of(a1));
	json_int("handshake_from_other", prio_of(a2));
	json_int("runs_from_server", runs_server);
	json_int("runs_from_other", skel->bss->clone_runs - runs_server);
	json_obj_close();
	print_clone_contexts(skel, (const char *[]){ "server", "other" }, (const char *[]){ server_path, other_path }, 2);
	json_close();
	close(c1);
	close(c2);
	bpf_link__destroy(witness);
	bpf_link__destroy(clone);
	bpf_link__destroy(bind_link);
	lsm_priority__destroy(skel);
}

struct coverage {
	int active_tcp, accepted_tcp, packet;
	int clone_runs;		/* times prio_clone ran, or -1 when not attached */
};

/* One mechanism in its own cgroup: active TCP, accepted TCP, AF_PACKET. As in
 * case_accept the listener predates the programs (priority 0). */
static struct coverage compare_one(const char *name, struct bpf_program *a, struct bpf_program *b, char *path)
{
	int cg = cgroup_create(NULL, name, path, 256);
	int listen_fd, client, accepted;
	struct bpf_link *la, *lb = NULL;
	struct coverage seen;
	unsigned short port;

	cgroup_join(path);
	listen_fd = tcp_listener(&port);
	la = attach(a, cg);
	if (b)
		lb = attach(b, cg);
	client = tcp_connect(port);
	accepted = tcp_accept(listen_fd);
	seen.active_tcp = prio_of(client);
	seen.accepted_tcp = prio_of(accepted);
	seen.packet = new_socket_prio(AF_PACKET, SOCK_RAW, 0);
	close(accepted);
	close(client);
	close(listen_fd);
	bpf_link__destroy(lb);
	bpf_link__destroy(la);
	return seen;
}

static void print_coverage(const char *key, int prio, struct coverage seen)
{
	json_obj_open(key);
	json_int("prio_set", prio);
	json_int("active_tcp", seen.active_tcp);
	json_int("accepted_tcp", seen.accepted_tcp);
	json_int("packet", seen.packet);
	if (seen.clone_runs >= 0)
		json_int("clone_runs", seen.clone_runs);
	json_obj_close();
}

/* 3. Why the talk moved SO_PRIORITY from cgroup/sock to lsm_cgroup: side by side,
 * in sibling cgroups, with different values so each column names its mechanism. */
static void case_compare(void)
{
	struct lsm_priority *sock = load_instance(SOCK_PRIO, "sock_create_prio", NULL);
	struct lsm_priority *lsm = load_instance(PRIO, "prio_post_create", "prio_clone", "clone_witness", NULL);
	char sock_path[256], lsm_path[256];
	struct coverage by_sock, by_lsm;
	struct bpf_link *witness;

	enter_private_netns();
	by_sock = compare_one("cgroup_sock", sock->progs.sock_create_prio, NULL, sock_path);
	by_sock.clone_runs = -1;
	lsm->bss->clone_calls = 0;
	witness = attach_clone_witness(lsm);
	by_lsm = compare_one("lsm_cgroup", lsm->progs.prio_post_create, lsm->progs.prio_clone, lsm_path);
	by_lsm.clone_runs = lsm->bss->clone_runs;

	begin_output();
	print_coverage("cgroup_sock", SOCK_PRIO, by_sock);
	print_coverage("lsm_cgroup", PRIO, by_lsm);
	print_clone_contexts(lsm, (const char *[]){ "lsm_cgroup" }, (const char *[]){ lsm_path }, 1);
	json_close();
	bpf_link__destroy(witness);
	lsm_priority__destroy(lsm);
	lsm_priority__destroy(sock);
}

static const char *set_int_opt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) ? errno_name(errno) : "OK";
}

/* 4. The task cannot take the priority back: the guard stops setsockopt() from
 * userspace, while bpf_setsockopt() in the LSM program does not pass through it. */
static void case_override(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "guard_priority", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "override", path, sizeof(path));
	const char *open_set, *guarded_set, *keepalive;
	int open_fd, guarded_fd, open_created, guarded_created;
	struct bpf_link *post, *guard;

	post = attach(skel->progs.prio_post_create, cg);
	cgroup_join(path);

	/* Without the guard the task can overwrite the default. */
	open_fd = must_socket(AF_INET, SOCK_STREAM, 0);
	open_created = prio_of(open_fd);
	open_set = set_int_opt(open_fd, SOL_SOCKET, SO_PRIORITY, TASK_PRIO);

	guard = attach(skel->progs.guard_priority, cg);
	guarded_fd = must_socket(AF_INET, SOCK_STREAM, 0);
	guarded_created = prio_of(guarded_fd);
	guarded_set = set_int_opt(guarded_fd, SOL_SOCKET, SO_PRIORITY, TASK_PRIO);
	keepalive = set_int_opt(guarded_fd, SOL_SOCKET, SO_KEEPALIVE, 1);

	begin_output();
	json_int("prio_set", PRIO);
	json_int("task_prio", TASK_PRIO);
	json_obj_open("without_guard");
	json_int("created", open_created);
	json_str("task_setsockopt", open_set);
	json_int("after", prio_of(open_fd));
	json_obj_close();
	json_obj_open("with_guard");
	json_int("created", guarded_created);
	json_str("task_setsockopt", guarded_set);
	json_int("after", prio_of(guarded_fd));
	json_str("other_option", keepalive);
	json_obj_close();
	json_close();
	bpf_link__destroy(guard);
	bpf_link__destroy(post);
	lsm_priority__destroy(skel);
}

/* Send one broadcast frame on lo: what a send-only prober still needs to do. */
static const char *packet_send(int fd)
{
	unsigned char frame[ETH_ZLEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				  .sll_ifindex = if_nametoindex("lo"), .sll_halen = ETH_ALEN };

	frame[12] = 0x08;	/* ethertype IPv4, payload zeros: nobody will answer */
	return sendto(fd, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)) < 0 ?
	       errno_name(errno) : "OK";
}

/* 5. NET_RAW_XMIT and IPv4 hiding in one cgroup; a sibling cgroup shows the defaults. */
static void case_net_raw_xmit(void)
{
	struct lsm_priority *skel = load_instance(0, "raw_xmit_create", "raw_xmit_bind", "hide_ipv4", NULL);
	char path[256], sibling_path[256];
	int cg = cgroup_create(NULL, "prober", path, sizeof(path));
	const char *all, *ip_dgram, *zero, *bind_all, *bind_zero, *send, *inet, *inet6;
	const char *sib_all, *sib_inet;
	struct bpf_link *create, *bind_link, *hide;
	int fd;

	cgroup_create(NULL, "sibling", sibling_path, sizeof(sibling_path));
	enter_private_netns();
	create = attach(skel->progs.raw_xmit_create, cg);
	bind_link = attach(skel->progs.raw_xmit_bind, cg);
	hide = attach(skel->progs.hide_ipv4, cg);

	cgroup_join(path);
	all = socket_result(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	ip_dgram = socket_result(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	zero = socket_result(AF_PACKET, SOCK_RAW, 0);
	fd = must_socket(AF_PACKET, SOCK_RAW, 0);
	bind_all = packet_bind(fd, ETH_P_ALL);
	bind_zero = packet_bind(fd, 0);
	send = packet_send(fd);
	close(fd);
	inet = socket_result(AF_INET, SOCK_STREAM, 0);
	inet6 = socket_result(AF_INET6, SOCK_STREAM, 0);

	cgroup_join(sibling_path);
	sib_all = socket_result(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	sib_inet = socket_result(AF_INET, SOCK_STREAM, 0);

	begin_output();
	json_obj_open("in_cgroup");
	json_str("packet_eth_p_all", all);
	json_str("packet_dgram_eth_p_ip", ip_dgram);
	json_str("packet_proto_0", zero);
	json_str("bind_eth_p_all", bind_all);
	json_str("bind_proto_0", bind_zero);
	json_str("send", send);
	json_str("inet", inet);
	json_str("inet6", inet6);
	json_obj_close();
	json_obj_open("sibling");
	json_str("packet_eth_p_all", sib_all);
	json_str("inet", sib_inet);
	json_obj_close();
	json_close();
	bpf_link__destroy(hide);
	bpf_link__destroy(bind_link);
	bpf_link__destroy(create);
	lsm_priority__destroy(skel);
}

struct writer {
	int runs, seen;
};

static int attached_count(int cg);

static void reset(struct lsm_priority *skel)
{
	skel->bss->post_create_runs = 0;
	skel->data->seen_prio = -1;
}

/* One socket in the child cgroup with programs on both; each program reports the
 * priority it found, so whoever saw the other's value ran second. */
static int one_hierarchy_socket(struct lsm_priority *parent, struct lsm_priority *child,
				struct writer *p, struct writer *c)
{
	int prio;

	reset(parent);
	reset(child);
	prio = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	*p = (struct writer){ parent->bss->post_create_runs, parent->data->seen_prio };
	*c = (struct writer){ child->bss->post_create_runs, child->data->seen_prio };
	return prio;
}

static void print_hierarchy(const char *key, int final, struct writer p, struct writer c)
{
	json_obj_open(key);
	json_int("final", final);
	json_int("parent_runs", p.runs);
	json_int("parent_seen", p.seen);
	json_int("child_runs", c.runs);
	json_int("child_seen", c.seen);
	json_obj_close();
}

/* Runs of a skeleton's prio_post_create for one fresh socket made now. */
static int runs_for_one_socket(struct lsm_priority *skel)
{
	reset(skel);
	new_socket_prio(AF_INET, SOCK_STREAM, 0);
	return skel->bss->post_create_runs;
}

/* All lsm_cgroup programs on one hook share one shim in the hook's trampoline. Since
 * ab5d47bd41b1 (fact bpf_link_put_deferred) the shim of a hook whose last program was
 * detached is unlinked later, by a work item; an attach meanwhile installs a second
 * shim beside it (56145d237385), and each program then runs once per shim. The anchor
 * (a program on the same hook, on a cgroup of its own) keeps the hook's shim alive for
 * the whole case. A shim left by an earlier process (the probe, a previous case) may
 * still be going: with the driver in the anchor's cgroup, the anchor runs once per
 * shim, so the case waits (bounded) until it runs once, and says how long it took. */
struct anchor {
	struct lsm_priority *skel;
	struct bpf_link *link;
	int first_runs, sockets;	/* runs for the first socket; sockets until one run */
};

static struct anchor anchor_hook(void)
{
	struct anchor a = { .skel = load_instance(ANCHOR_PRIO, "prio_post_create", NULL) };
	char path[256];
	int cg = cgroup_create(NULL, "anchor", path, sizeof(path));
	int runs;

	cgroup_join(path);
	a.link = attach(a.skel->progs.prio_post_create, cg);
	for (a.sockets = 1; a.sockets <= 200; a.sockets++) {
		runs = runs_for_one_socket(a.skel);
		if (a.sockets == 1)
			a.first_runs = runs;
		if (runs == 1)
			break;
		usleep(10000);	/* the old shim's work item runs when this task sleeps */
	}
	return a;
}

static void print_anchor(struct anchor a)
{
	json_obj_open("anchor");
	json_int("first_socket_runs", a.first_runs);
	json_bool("single_shim_reached", a.sockets <= 200);
	json_int("sockets_until_single_shim", a.sockets <= 200 ? a.sockets : -1);
	json_obj_close();
}

/* 6. lsm_cgroup programs on a parent and its child both run for a socket in the
 * child. Attached in both orders, to tell hierarchy order from attach order, with
 * the anchor holding the hook's shim, so the order is seen through one shim. */
static void case_hierarchy(void)
{
	struct anchor a = anchor_hook();
	struct lsm_priority *parent = load_instance(PARENT_PRIO, "prio_post_create", NULL);
	struct lsm_priority *child = load_instance(PRIO, "prio_post_create", NULL);
	char parent_path[256], child_path[256];
	int parent_cg = cgroup_create(NULL, "parent", parent_path, sizeof(parent_path));
	int child_cg = cgroup_create(parent_path, "child", child_path, sizeof(child_path));
	struct writer p1, c1, p2, c2;
	struct bpf_link *pl, *cl;
	int final1, final2, listed;

	cgroup_join(child_path);
	pl = attach(parent->progs.prio_post_create, parent_cg);
	cl = attach(child->progs.prio_post_create, child_cg);
	final1 = one_hierarchy_socket(parent, child, &p1, &c1);
	bpf_link__destroy(pl);
	bpf_link__destroy(cl);
	/* One model for every case (detach too): a destroyed link is gone when
	 * bpf_link__destroy() returns, neither listed nor run. No waiting: what the kernel
	 * still lists is reported, and the test expects 0. */
	listed = attached_count(parent_cg) + attached_count(child_cg);

	cl = attach(child->progs.prio_post_create, child_cg);
	pl = attach(parent->progs.prio_post_create, parent_cg);
	final2 = one_hierarchy_socket(parent, child, &p2, &c2);
	bpf_link__destroy(pl);
	bpf_link__destroy(cl);

	begin_output();
	json_int("parent_prio", PARENT_PRIO);
	json_int("child_prio", PRIO);
	print_anchor(a);
	print_hierarchy("parent_attached_first", final1, p1, c1);
	print_hierarchy("child_attached_first", final2, p2, c2);
	json_int("listed_after_destroy", listed);
	json_close();
	bpf_link__destroy(a.link);
	lsm_priority__destroy(a.skel);
	lsm_priority__destroy(child);
	lsm_priority__destroy(parent);
}

/* lsm_cgroup programs attached directly to this cgroup, as the kernel lists them. */
static int attached_count(int cg)
{
	__u32 ids[16], flags[16];
	/* Per-program attach flags are required with prog_ids for BPF_LSM_CGROUP:
	 * programs on different hooks of one cgroup may have different flags. */
	LIBBPF_OPTS(bpf_prog_query_opts, opts, .prog_ids = ids, .prog_attach_flags = flags, .prog_cnt = 16);

	if (bpf_prog_query_opts(cg, BPF_LSM_CGROUP, &opts))
		return -errno;
	return opts.prog_cnt;
}

/* 7. Destroying the links takes the policy away again: nothing is left behind. */
static void case_detach(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "raw_xmit_create", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "detach", path, sizeof(path));
	int attached_prio, attached_n, detached_prio, detached_n;
	const char *attached_packet, *detached_packet;
	struct bpf_link *prio, *raw;

	enter_private_netns();
	cgroup_join(path);
	prio = attach(skel->progs.prio_post_create, cg);
	raw = attach(skel->progs.raw_xmit_create, cg);
	attached_prio = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	attached_packet = socket_result(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	attached_n = attached_count(cg);

	bpf_link__destroy(raw);
	bpf_link__destroy(prio);
	detached_prio = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	detached_packet = socket_result(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	detached_n = attached_count(cg);

	begin_output();
	json_int("prio_set", PRIO);
	json_obj_open("attached");
	json_int("prio", attached_prio);
	json_str("packet_eth_p_all", attached_packet);
	json_int("query_count", attached_n);
	json_obj_close();
	json_obj_open("detached");
	json_int("prio", detached_prio);
	json_str("packet_eth_p_all", detached_packet);
	json_int("query_count", detached_n);
	json_obj_close();
	json_close();
	lsm_priority__destroy(skel);
}

/* Per scheduling policy: what ran for sockets made right after each step. */
struct lifetime {
	const char *policy_set;		/* "OK" or why the policy could not be set */
	int rounds, attached_sockets, ran_once, ran_more, missed, max_runs, destroyed_ran;
};

static void count_attached(struct lifetime *t, int runs)
{
	t->attached_sockets++;
	t->ran_once += runs == 1;
	t->ran_more += runs > 1;
	t->missed += runs == 0;
	if (runs > t->max_runs)
		t->max_runs = runs;
}

/* Rounds of: attach, socket; destroy (the hook's last link), socket; attach again at
 * once, socket; destroy; sleep, so the kernel's deferred work can run before the next
 * round. Under SCHED_FIFO on one vCPU no ordinary kworker runs before this task
 * sleeps, which holds a deferred shim release (bpf_link_put_deferred) open across
 * the re-attach; under SCHED_OTHER it is whatever the scheduler does. */
static struct lifetime lifetime_rounds(struct lsm_priority *skel, int cg, int policy)
{
	struct sched_param param = { .sched_priority = policy == SCHED_FIFO ? 10 : 0 };
	struct lifetime t = { .policy_set = "OK", .rounds = LIFETIME_ROUNDS };
	struct bpf_link *link;

	if (sched_setscheduler(0, policy, &param))
		t.policy_set = errno_name(errno);
	for (int i = 0; i < LIFETIME_ROUNDS; i++) {
		link = attach(skel->progs.prio_post_create, cg);
		count_attached(&t, runs_for_one_socket(skel));
		bpf_link__destroy(link);
		t.destroyed_ran += runs_for_one_socket(skel) > 0;
		link = attach(skel->progs.prio_post_create, cg);
		count_attached(&t, runs_for_one_socket(skel));
		bpf_link__destroy(link);
		usleep(50000);
	}
	param.sched_priority = 0;
	sched_setscheduler(0, SCHED_OTHER, &param);
	return t;
}

static void print_lifetime(const char *key, struct lifetime t)
{
	json_obj_open(key);
	json_str("policy_set", t.policy_set);
	json_int("rounds", t.rounds);
	json_int("attached_sockets", t.attached_sockets);
	json_int("ran_once", t.ran_once);
	json_int("ran_more_than_once", t.ran_more);
	json_int("missed", t.missed);
	json_int("max_runs", t.max_runs);
	json_int("destroyed_program_ran", t.destroyed_ran);
	json_obj_close();
}

/* 8. The hook's shim after its last link is destroyed: a destroyed program must not
 * run; a program attached again right away runs once per shim in the trampoline. */
static void case_shim_lifetime(void)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "lifetime", path, sizeof(path));
	struct lifetime other, fifo;

	cgroup_join(path);
	other = lifetime_rounds(skel, cg, SCHED_OTHER);
	fifo = lifetime_rounds(skel, cg, SCHED_FIFO);

	begin_output();
	print_lifetime("sched_other", other);
	print_lifetime("sched_fifo", fifo);
	json_close();
	lsm_priority__destroy(skel);
}

static const struct {
	const char *name;
	void (*run)(void);
} cases[] = {
	{ "probe", case_probe },
	{ "post_create", case_post_create },
	{ "accept", case_accept },
	{ "whose_cgroup", case_whose_cgroup },
	{ "compare", case_compare },
	{ "override", case_override },
	{ "net_raw_xmit", case_net_raw_xmit },
	{ "hierarchy", case_hierarchy },
	{ "detach", case_detach },
	{ "shim_lifetime", case_shim_lifetime },
};

int main(int argc, char **argv)
{
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(argv[1], cases[i].name))
			continue;
		case_name = cases[i].name;
		libbpf_set_print(libbpf_print);
		probe_lsm_cgroup();
		cases[i].run();
		return 0;
	}
	errno = EINVAL;
	fail("usage: lsm_priority probe|post_create|accept|whose_cgroup|compare|override|net_raw_xmit|hierarchy|detach|"
	     "shim_lifetime");
}
