/* net_policy ports and rewrite: bind-port limits in cgroup/bind4 and bind6, what they
 * never see (autobind: bind to port 0, connect() without bind), and a bind rewritten to a
 * port under ip_unprivileged_port_start by a task without CAP_NET_BIND_SERVICE. */
#include "driver.h"

/* bind() of a fresh TCP socket, closed again: "OK" or the errno name */
static const char *try_bind(int family, unsigned short port)
{
	int fd;
	const char *err = bind_port(family, SOCK_STREAM, port, &fd);

	if (fd >= 0)
		close(fd);
	return err;
}

static int in_local_range(unsigned short port)
{
	return port >= LOCAL_RANGE_LO && port <= LOCAL_RANGE_HI;
}

/* An explicit bind to a port autobind gave: what the limit says of that very port. */
static void autobound(struct net_policy *skel, int family, int fd, __u32 runs_before)
{
	unsigned short port = local_port(fd);

	json_int("hook_runs", skel->bss->bind_runs - runs_before);
	json_int("port", port);
	json_bool("port_in_local_range", in_local_range(port));
	json_str("same_port_bound_explicitly", try_bind(family, port));
}

static void ports_for(struct net_policy *skel, int family, unsigned short listener)
{
	struct sockaddr_storage to;
	socklen_t len = loopback(family, listener, &to);
	int fd, conn;
	__u32 runs;

	json_obj_open(family_name(family));
	json_str("in_range", try_bind(family, PORT_LO));
	json_str("refused_port", try_bind(family, PORT_REFUSED));
	json_str("above_limit", try_bind(family, ABOVE_LIMIT));

	runs = skel->bss->bind_runs;
	skel->bss->bind_last_port = 99999;
	json_obj_open("bind_port_0");
	json_str("errno", bind_port(family, SOCK_STREAM, 0, &fd));
	json_int("hook_saw_port", skel->bss->bind_last_port);
	if (fd >= 0) {
		autobound(skel, family, fd, runs);
		close(fd);
	}
	json_obj_close();

	runs = skel->bss->bind_runs;
	conn = must_socket(family, SOCK_STREAM, 0);
	json_obj_open("connect_without_bind");
	json_str("errno", connect(conn, (struct sockaddr *)&to, len) ? errno_name(errno) : "OK");
	autobound(skel, family, conn, runs);
	json_obj_close();
	close(conn);
	json_obj_close();
}

void case_ports(char **argv)
{
	struct net_policy *skel = must_load("bind4_limit", "bind6_limit", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "ports", path, sizeof(path));
	struct container_policy pol = default_policy();
	int families[] = { AF_INET, AF_INET6 }, listeners[2];
	unsigned short ports[2];

	enter_private_netns();
	set_local_port_range(LOCAL_RANGE_LO, LOCAL_RANGE_HI);
	for (int i = 0; i < 2; i++) {	/* in the root cgroup, before the programs */
		const char *err = bind_port(families[i], SOCK_STREAM, 0, &listeners[i]);

		if (listeners[i] < 0 || listen(listeners[i], 8))
			fail("listener: %s", err);
		ports[i] = local_port(listeners[i]);
	}
	attach_to(skel->progs.bind4_limit, cg);
	attach_to(skel->progs.bind6_limit, cg);
	write_policy(skel, path, &pol);
	cgroup_join(path);

	begin_output();
	json_int("port_limit", PORT_LIMIT);
	json_int("port_lo", PORT_LO);
	json_int("port_hi", PORT_HI);
	for (int i = 0; i < 2; i++)
		ports_for(skel, families[i], ports[i]);
	json_close();
	net_policy__destroy(skel);
}

/* One family's binds in the rewrite case, with the capability as it is now. */
static void rewrite_binds(int family, const char *direct_key, const char *rewritten_key)
{
	int fd;

	if (direct_key)
		json_str(direct_key, try_bind(family, REWRITE_TO));
	json_obj_open(rewritten_key);
	json_str("errno", bind_port(family, SOCK_STREAM, REWRITE_FROM, &fd));
	json_int("port", fd >= 0 ? local_port(fd) : -1);
	json_obj_close();
	if (fd >= 0)
		close(fd);
}

/* rewrite cap_check|no_cap_check: the programs return 1 or 3 after rewriting. */
void case_rewrite(char **argv)
{
	__u32 ret = strcmp(argv[1], "no_cap_check") ? 1 : 3;
	struct net_policy *skel = load_or_report(ret, "bind4_rewrite", "bind6_rewrite", NULL);
	int families[] = { AF_INET, AF_INET6 };
	char path[256];
	int cg;

	if (!skel)
		return;
	cg = cgroup_create(NULL, "rewrite", path, sizeof(path));
	enter_private_netns();
	attach_to(skel->progs.bind4_rewrite, cg);
	attach_to(skel->progs.bind6_rewrite, cg);
	cgroup_join(path);

	begin_output();
	json_bool("loaded", 1);
	json_int("program_returns", ret);
	json_int("rewrite_from", REWRITE_FROM);
	json_int("rewrite_to", REWRITE_TO);
	for (int i = 0; i < 2; i++) {
		json_obj_open(family_name(families[i]));
		set_bind_service(0);
		rewrite_binds(families[i], "privileged_port_without_cap", "rewritten_without_cap");
		set_bind_service(1);
		rewrite_binds(families[i], NULL, "rewritten_with_cap");
		json_obj_close();
	}
	json_close();
	net_policy__destroy(skel);
}
