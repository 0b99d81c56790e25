/* net_policy tos: the IP_TOS / IPV6_TCLASS allow-list in cgroup/setsockopt, and what
 * reaches the wire: the receiver reads each datagram's TOS (IP_RECVTOS) or traffic class
 * (IPV6_RECVTCLASS). A TOS in a cmsg on sendmsg never passes through the hook. */
#include "driver.h"

#include <sys/time.h>

static int tos_level(int family) { return family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP; }
static int tos_name(int family) { return family == AF_INET6 ? IPV6_TCLASS : IP_TOS; }

/* A UDP receiver on loopback that reports each datagram's TOS; its port in *port. */
static int tos_receiver(int family, unsigned short *port)
{
	struct timeval timeout = { .tv_sec = 2 };
	int fd;
	const char *err = bind_port(family, SOCK_DGRAM, 0, &fd);

	if (fd < 0)
		fail("receiver bind: %s", err);
	if (strcmp(set_int_opt(fd, tos_level(family), family == AF_INET6 ? IPV6_RECVTCLASS : IP_RECVTOS, 1), "OK") ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)))
		fail("receiver options");
	*port = local_port(fd);
	return fd;
}

/* The TOS of the next datagram as it arrived; -1: none arrived, -2: no TOS cmsg. */
static int received_tos(int fd)
{
	char data[16], control[256];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			      .msg_controllen = sizeof(control) };

	if (recvmsg(fd, &msg, 0) < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS)
			return *(unsigned char *)CMSG_DATA(c);
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS)
			return *(int *)CMSG_DATA(c);
	}
	return -2;
}

/* One datagram to the receiver; cmsg_tos >= 0 adds IP_TOS / IPV6_TCLASS ancillary data. */
static const char *send_datagram(int fd, int family, unsigned short port, int cmsg_tos)
{
	struct sockaddr_storage to;
	socklen_t len = loopback(family, port, &to);
	char control[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = { "tos", 3 };
	struct msghdr msg = { .msg_name = &to, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1 };

	if (cmsg_tos >= 0) {
		struct cmsghdr *c;

		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = tos_level(family);
		c->cmsg_type = tos_name(family);
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &cmsg_tos, sizeof(int));
	}
	return sendmsg(fd, &msg, 0) < 0 ? errno_name(errno) : "OK";
}

static int socket_tos(int fd, int family)
{
	int tos = -1;
	socklen_t len = sizeof(tos);

	if (getsockopt(fd, tos_level(family), tos_name(family), &tos, &len))
		fail("getsockopt TOS");
	return family == AF_INET ? tos & 0xff : tos;
}

/* What a task in the current cgroup gets, for one family. */
static void tos_from_here(int family, int receiver, unsigned short port)
{
	int fd = must_socket(family, SOCK_DGRAM, 0);

	json_obj_open(family_name(family));
	json_str("set_allowed", set_int_opt(fd, tos_level(family), tos_name(family), TOS_ALLOWED));
	json_str("set_forbidden", set_int_opt(fd, tos_level(family), tos_name(family), TOS_FORBIDDEN));
	json_int("socket_tos", socket_tos(fd, family));
	json_str("send", send_datagram(fd, family, port, -1));
	json_int("wire_tos", received_tos(receiver));
	json_str("send_cmsg_forbidden", send_datagram(fd, family, port, TOS_FORBIDDEN));
	json_int("wire_tos_cmsg", received_tos(receiver));
	json_obj_close();
	close(fd);
}

void case_tos(char **argv)
{
	struct net_policy *skel = must_load("tos_allow_list", NULL);
	char path[256], sibling[256];
	int cg = cgroup_create(NULL, "tos", path, sizeof(path));
	struct container_policy pol = default_policy();
	int families[] = { AF_INET, AF_INET6 }, receivers[2];
	unsigned short ports[2];

	cgroup_create(NULL, "sibling", sibling, sizeof(sibling));
	enter_private_netns();
	for (int i = 0; i < 2; i++)	/* in the root cgroup: the receivers' options are theirs */
		receivers[i] = tos_receiver(families[i], &ports[i]);
	attach_to(skel->progs.tos_allow_list, cg);
	write_policy(skel, path, &pol);

	begin_output();
	json_int("tos_allowed", TOS_ALLOWED);
	json_int("tos_forbidden", TOS_FORBIDDEN);
	cgroup_join(path);
	json_obj_open("in_cgroup");
	for (int i = 0; i < 2; i++)
		tos_from_here(families[i], receivers[i], ports[i]);
	json_obj_close();
	cgroup_join(sibling);
	json_obj_open("sibling");
	for (int i = 0; i < 2; i++)
		tos_from_here(families[i], receivers[i], ports[i]);
	json_obj_close();
	json_close();
	net_policy__destroy(skel);
}

/* tos_bind: sockets whose TOS was set before the bind programs came, bound after: the
 * list is held against each socket's TOS (bpf_getsockopt) at bind. */
void case_tos_bind(char **argv)
{
	struct net_policy *skel = load_or_report(1, "bind4_tos", "bind6_tos", NULL);
	struct container_policy pol = default_policy();
	int families[] = { AF_INET, AF_INET6 }, tos[] = { 0, TOS_ALLOWED, TOS_FORBIDDEN };
	const char *names[] = { "default_tos", "allowed_tos", "forbidden_tos" };
	int fds[2][3];
	char path[256];
	int cg;

	if (!skel)
		return;
	cg = cgroup_create(NULL, "tos_bind", path, sizeof(path));
	enter_private_netns();
	cgroup_join(path);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 3; k++) {
			fds[i][k] = must_socket(families[i], SOCK_DGRAM, 0);
			if (strcmp(set_int_opt(fds[i][k], tos_level(families[i]), tos_name(families[i]), tos[k]), "OK"))
				fail("setting TOS %d before the policy", tos[k]);
		}
	attach_to(skel->progs.bind4_tos, cg);
	attach_to(skel->progs.bind6_tos, cg);
	write_policy(skel, path, &pol);

	begin_output();
	json_bool("loaded", 1);
	for (int i = 0; i < 2; i++) {
		json_obj_open(family_name(families[i]));
		for (int k = 0; k < 3; k++) {
			struct sockaddr_storage addr;
			socklen_t len = loopback(families[i], 0, &addr);

			json_str(names[k], bind(fds[i][k], (struct sockaddr *)&addr, len) ? errno_name(errno) : "OK");
			close(fds[i][k]);
		}
		json_obj_close();
	}
	json_close();
	net_policy__destroy(skel);
}
