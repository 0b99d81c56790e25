/* lsm_priority's policy cases: the task cannot take the priority back, AF_PACKET
 * send-only with IPv4 hidden, and destroying the links leaves nothing behind. */
#include "driver.h"

#include <net/if.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

/* 4. The task cannot take the priority back: the guard stops setsockopt() from
 * userspace, while bpf_setsockopt() in the LSM program does not pass through it. */
void case_override(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "guard_priority", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "override", path, sizeof(path));
	const char *open_set, *guarded_set, *keepalive;
	int open_fd, guarded_fd, open_created, guarded_created;
	int post, guard;

	post = link_to(skel->progs.prio_post_create, cg);
	cgroup_join(path);

	/* Without the guard the task can overwrite the default. */
	open_fd = must_socket(AF_INET, SOCK_STREAM, 0);
	open_created = prio_of(open_fd);
	open_set = set_int_opt(open_fd, SOL_SOCKET, SO_PRIORITY, TASK_PRIO);

	guard = link_to(skel->progs.guard_priority, cg);
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
	link_destroy(guard);
	link_destroy(post);
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
void case_net_raw_xmit(char **argv)
{
	struct lsm_priority *skel = load_instance(0, "raw_xmit_create", "raw_xmit_bind", "hide_ipv4", NULL);
	char path[256], sibling_path[256];
	int cg = cgroup_create(NULL, "prober", path, sizeof(path));
	const char *all, *ip_dgram, *zero, *bind_all, *bind_zero, *send, *inet, *inet6;
	const char *sib_all, *sib_inet;
	int create, bind_link, hide;
	int fd;

	cgroup_create(NULL, "sibling", sibling_path, sizeof(sibling_path));
	enter_private_netns();
	create = link_to(skel->progs.raw_xmit_create, cg);
	bind_link = link_to(skel->progs.raw_xmit_bind, cg);
	hide = link_to(skel->progs.hide_ipv4, cg);

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
	link_destroy(hide);
	link_destroy(bind_link);
	link_destroy(create);
	lsm_priority__destroy(skel);
}
/* 7. Destroying the links takes the policy away again: nothing is left behind. */
void case_detach(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", "raw_xmit_create", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "detach", path, sizeof(path));
	int attached_prio, attached_n, detached_prio, detached_n;
	const char *attached_packet, *detached_packet;
	int prio, raw;

	enter_private_netns();
	cgroup_join(path);
	prio = link_to(skel->progs.prio_post_create, cg);
	raw = link_to(skel->progs.raw_xmit_create, cg);
	attached_prio = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	attached_packet = socket_result(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	attached_n = attached_count(cg);

	link_destroy(raw);
	link_destroy(prio);
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
