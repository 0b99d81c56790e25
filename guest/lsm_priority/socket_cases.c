/* lsm_priority's cases on where the priority reaches: created, accepted and AF_PACKET
 * sockets, whose cgroup's programs run, and cgroup/sock beside lsm_cgroup. */
#include "driver.h"

#include <linux/if_ether.h>

void case_probe(char **argv)
{
	begin_output();
	json_close();
}

/* 1. The priority reaches every socket created in the cgroup, and only there. */
void case_post_create(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", NULL);
	char cg_path[256], sibling_path[256];
	int cg = cgroup_create(NULL, "prio", cg_path, sizeof(cg_path));
	int tcp, udp6, unix_, sib_tcp, sib_udp6, sib_unix;
	int link;

	cgroup_create(NULL, "sibling", sibling_path, sizeof(sibling_path));
	link = link_to(skel->progs.prio_post_create, cg);

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
	link_destroy(link);
	lsm_priority__destroy(skel);
}

/* 2. Accepted sockets. The listener is created before anything is attached, so its
 * priority is 0: sk_clone copies the listener's priority into the child, and a
 * non-zero listener would hide whether any hook ran for the child.
 * connect() runs in the server cgroup throughout: on loopback the handshake, and
 * so inet_csk_clone, runs in the connecting task's context, and which cgroup that
 * puts in charge is the separate question of case_whose_cgroup. */
void case_accept(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "prio_clone", "clone_witness", NULL);
	char server_path[256], other_path[256];
	int server_cg = cgroup_create(NULL, "server", server_path, sizeof(server_path));
	int listen_fd, listener, c1, a1, c2, a2, c3, a3, post_runs;
	int post, clone, witness;
	unsigned short port;

	cgroup_create(NULL, "other", other_path, sizeof(other_path));
	enter_private_netns();
	cgroup_join(server_path);
	listen_fd = tcp_listener(0, &port);
	listener = prio_of(listen_fd);

	witness = attach_clone_witness(skel);
	post = link_to(skel->progs.prio_post_create, server_cg);
	c1 = tcp_connect(port);
	a1 = tcp_accept(listen_fd);
	post_runs = skel->bss->post_create_runs;	/* 1: the client only */

	clone = link_to(skel->progs.prio_clone, server_cg);
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
	link_destroy(witness);
	link_destroy(clone);
	link_destroy(post);
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
void case_whose_cgroup(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_clone", "raw_xmit_bind", "clone_witness", NULL);
	char server_path[256], other_path[256];
	int server_cg = cgroup_create(NULL, "server", server_path, sizeof(server_path));
	int listen_fd, from_server_fd, from_other_fd, c1, a1, c2, a2;
	const char *bind_sock_server, *bind_sock_other;
	int bind_link, clone, witness;
	unsigned short port;
	__u32 runs_server;

	cgroup_create(NULL, "other", other_path, sizeof(other_path));
	enter_private_netns();
	bind_link = link_to(skel->progs.raw_xmit_bind, server_cg);

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
	listen_fd = tcp_listener(0, &port);	/* before the clone program: priority 0 */
	witness = attach_clone_witness(skel);
	clone = link_to(skel->progs.prio_clone, server_cg);
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
	link_destroy(witness);
	link_destroy(clone);
	link_destroy(bind_link);
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
	int la, lb = -1;
	struct coverage seen;
	unsigned short port;

	cgroup_join(path);
	listen_fd = tcp_listener(0, &port);
	la = link_to(a, cg);
	if (b)
		lb = link_to(b, cg);
	client = tcp_connect(port);
	accepted = tcp_accept(listen_fd);
	seen.active_tcp = prio_of(client);
	seen.accepted_tcp = prio_of(accepted);
	seen.packet = new_socket_prio(AF_PACKET, SOCK_RAW, 0);
	close(accepted);
	close(client);
	close(listen_fd);
	link_destroy(lb);
	link_destroy(la);
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
void case_compare(char **argv)
{
	struct lsm_priority *sock = load_instance(SOCK_PRIO, "sock_create_prio", NULL);
	struct lsm_priority *lsm = load_instance(PRIO, "prio_post_create", "prio_clone", "clone_witness", NULL);
	char sock_path[256], lsm_path[256];
	struct coverage by_sock, by_lsm;
	int witness;

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
	link_destroy(witness);
	lsm_priority__destroy(lsm);
	lsm_priority__destroy(sock);
}

