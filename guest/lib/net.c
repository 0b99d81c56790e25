/* net.h: the drivers' socket and TCP helpers. */
#include "../common.h"
#include "net.h"

#include <grp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

void enter_private_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd;

	if (unshare(CLONE_NEWNET))
		fail("unshare(CLONE_NEWNET)");
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		fail("SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		fail("bringing lo up");
	close(fd);
}

int try_socket(int family, int type, int protocol)
{
	int fd = socket(family, type, protocol);

	return fd < 0 ? -errno : fd;
}

int must_socket(int family, int type, int protocol)
{
	int fd = socket(family, type, protocol);

	if (fd < 0)
		fail("socket(%d, %d, %d)", family, type, protocol);
	return fd;
}

const char *socket_result(int family, int type, int protocol)
{
	int fd = try_socket(family, type, protocol);

	if (fd < 0)
		return errno_name(-fd);
	close(fd);
	return "OK";
}

int tcp_listener(unsigned short port, unsigned short *bound)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = must_socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if ((port && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&addr, &len))
		fail("TCP listener on 127.0.0.1:%u", port);
	if (bound)
		*bound = ntohs(addr.sin_port);
	return fd;
}

int tcp_connect(unsigned short port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = must_socket(AF_INET, SOCK_STREAM, 0);

	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("connect to 127.0.0.1:%u", port);
	return fd;
}

int tcp_accept(int listen_fd)
{
	int fd = accept(listen_fd, NULL, NULL);

	if (fd < 0)
		fail("accept");
	return fd;
}

void tcp_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		fail("TCP_NODELAY");
}

void send_all(int fd, const void *buf, size_t len)
{
	if (send(fd, buf, len, 0) != (ssize_t)len)
		fail("send");
}

void recv_all(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

		if (n <= 0)
			fail("recv (got %zu of %zu bytes)", got, len);
		got += n;
	}
}

const char *set_int_opt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) ? errno_name(errno) : "OK";
}

int prio_of(int fd)
{
	int prio = -1;
	socklen_t len = sizeof(prio);

	if (getsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, &len))
		fail("getsockopt(SO_PRIORITY)");
	return prio;
}

void set_peer_groups(int count)
{
	gid_t *groups = calloc(count, sizeof(gid_t));

	for (int i = 0; groups && i < count; i++)
		groups[i] = FIRST_PEER_GROUP + i;
	if (!groups || setgroups(count, groups))
		fail("setgroups(%d)", count);
	free(groups);
}
