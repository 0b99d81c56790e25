/* 2c. Whose cgroup, from outside: a SYN that arrives through the guest's network interface
 * (a host port the test forwards at runtime) completes its handshake in softirq work that no
 * task of the listener's cgroup runs (the driver sleeps in poll()); then the same listener
 * over loopback, connected from the server cgroup, as case whose_cgroup does.
 *
 *   lsm_priority from_outside PORT DIR
 * Listens on 0.0.0.0:PORT in the guest's own network namespace (the forward reaches only it),
 * creates DIR/ready once listening, waits up to OUTSIDE_WAIT_S for the outside connection,
 * prints its JSON on stdout and creates DIR/done at the end. */
#include "driver.h"

#include <netinet/in.h>
#include <poll.h>

#define OUTSIDE_WAIT_S 60

static void touch(const char *dir, const char *name)
{
	char path[300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0)
		fail("creating %s", path);
	close(fd);
}

static int any_listener(unsigned short port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY };
	int fd = must_socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 8))
		fail("TCP listener on 0.0.0.0:%u", port);
	return fd;
}

/* The next connection, or -1 after OUTSIDE_WAIT_S: the driver sleeps meanwhile. */
static int accept_within(int listen_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };

	if (poll(&p, 1, OUTSIDE_WAIT_S * 1000) != 1)
		return -1;
	return tcp_accept(listen_fd);
}

void case_from_outside(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_clone", "clone_witness", NULL);
	unsigned short port = atoi(argv[1]);
	const char *dir = argv[2];
	char server_path[256];
	int server_cg = cgroup_create(NULL, "server", server_path, sizeof(server_path));
	int listen_fd, outside, c1, a1, clone, witness;
	__u32 runs_outside;

	cgroup_join(server_path);
	listen_fd = any_listener(port);		/* before the clone program: priority 0 */
	witness = attach_clone_witness(skel);
	clone = link_to(skel->progs.prio_clone, server_cg);
	touch(dir, "ready");
	outside = accept_within(listen_fd);
	runs_outside = skel->bss->clone_runs;
	c1 = tcp_connect(port);			/* loopback, from the server cgroup */
	a1 = tcp_accept(listen_fd);

	begin_output();
	json_int("prio_set", PRIO);
	json_bool("outside_connected", outside >= 0);
	json_obj_open("inet_csk_clone_on_server_listener");
	json_int("handshake_from_outside", outside >= 0 ? prio_of(outside) : -1);
	json_int("handshake_over_loopback_from_server", prio_of(a1));
	json_int("runs_from_outside", runs_outside);
	json_int("runs_over_loopback", skel->bss->clone_runs - runs_outside);
	json_obj_close();
	print_clone_contexts(skel, (const char *[]){ "server" }, (const char *[]){ server_path }, 1);
	json_close();
	fflush(stdout);
	close(c1);
	link_destroy(witness);
	link_destroy(clone);
	lsm_priority__destroy(skel);
	touch(dir, "done");
}
