/* check_policy's socket kinds: each made or used in the policy's cgroup, what is read off
 * it, and the programs' run counts around it (kernel.bpf_stats_enabled is on). */
#include "driver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/if_packet.h>

const char *kind_names[NR_KINDS] = { "tcp4", "tcp6", "udp4", "raw4", "packet", "unix", "accepted_peer_inside",
				     "accepted_peer_outside", "foreign_used_here" };

/* A port nothing listens on (bound, never listening): connecting there gets a reset, so the
 * connect hooks run for the socket under test without a peer socket being made. */
static unsigned short closed4, closed6;
static int closed4_fd, closed6_fd, listen_fd, inside_client = -1, foreign = -1;
static unsigned short listen_port;

static void runs_now(long long *out)
{
	for (int i = 0; i < nr_progs; i++)
		out[i] = run_count(progs[i]);
}

static void read_state(int fd, struct seen *s)
{
	socklen_t len = sizeof(int);

	s->made = 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PRIORITY, &s->prio, &len))
		s->prio = -errno;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_MARK, &s->mark, &len))
		s->mark = -errno;
	len = sizeof(s->dev);
	memset(s->dev, 0, sizeof(s->dev));
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, s->dev, &len))
		snprintf(s->dev, sizeof(s->dev), "%s", errno_name(errno));
}

static int loopback(int family, unsigned short port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a6 = (void *)ss;

	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	a6->sin6_addr = in6addr_loopback;
	return sizeof(*a6);
}

static int bound_closed_port(int family, unsigned short *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, 0, &ss);
	int fd = must_socket(family, SOCK_STREAM, 0);

	if (bind(fd, (void *)&ss, len) || getsockname(fd, (void *)&ss, &len))
		fail("binding a closed port");
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* socket(), bind to an ephemeral loopback port, connect to the closed port: every step's errno */
static void active(int family, int type, int protocol, struct seen *s)
{
	struct sockaddr_storage ss;
	int fd = try_socket(family, type, protocol), len;

	if (fd < 0) {
		s->socket_err = -fd;
		return;
	}
	if (family == AF_INET || family == AF_INET6) {
		len = loopback(family, 0, &ss);
		s->bind_err = bind(fd, (void *)&ss, len) ? errno : 0;
		len = loopback(family, family == AF_INET ? closed4 : closed6, &ss);
		if (type != SOCK_RAW)
			s->connect_err = connect(fd, (void *)&ss, len) ? errno : 0;
	}
	read_state(fd, s);
	close(fd);
}

/* A peer in another cgroup connects (a child process there); the listener's side accepts. */
static void accepted_from_outside(const struct places *where, struct seen *s)
{
	int go[2], fd;
	pid_t child;
	char byte = 0;

	if (pipe(go))
		fail("pipe");
	child = fork();
	if (child < 0)
		fail("fork");
	if (!child) {
		cgroup_join(where->outside);
		fd = tcp_connect(listen_port);
		if (read(go[0], &byte, 1) < 0)  /* hold the connection until the parent has read it */
			_exit(1);
		close(fd);
		_exit(0);
	}
	fd = accept(listen_fd, NULL, NULL);
	s->accept_err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		read_state(fd, s);
		close(fd);
	}
	if (write(go[1], &byte, 1) < 0)
		fail("pipe write");
	waitpid(child, NULL, 0);
	close(go[0]);
	close(go[1]);
}

void begin_round(const struct places *where)
{
	cgroup_join(where->outside);
	closed4_fd = bound_closed_port(AF_INET, &closed4);
	closed6_fd = bound_closed_port(AF_INET6, &closed6);
	foreign = must_socket(AF_INET, SOCK_STREAM, 0);      /* made elsewhere, used in the policy's cgroup */
	cgroup_join(where->policy);
	listen_fd = tcp_listener(0, &listen_port);           /* a service started before the policy */
	inside_client = must_socket(AF_INET, SOCK_STREAM, 0);
}

void end_round(void)
{
	close(foreign);
	close(inside_client);
	close(listen_fd);
	close(closed4_fd);
	close(closed6_fd);
}

void observe_kinds(const struct places *where, struct seen out[NR_KINDS])
{
	struct sockaddr_storage ss;
	long long before[MAX_PROGS];
	int fd, len;

	memset(out, 0, sizeof(struct seen) * NR_KINDS);
	cgroup_join(where->policy);
	for (int k = 0; k < NR_KINDS; k++) {
		struct seen *s = &out[k];

		runs_now(before);
		switch (k) {
		case TCP4: active(AF_INET, SOCK_STREAM, 0, s); break;
		case TCP6: active(AF_INET6, SOCK_STREAM, 0, s); break;
		case UDP4: active(AF_INET, SOCK_DGRAM, 0, s); break;
		case RAW4: active(AF_INET, SOCK_RAW, IPPROTO_ICMP, s); break;
		case PACKET: active(AF_PACKET, SOCK_RAW, 0, s); break;     /* protocol 0: receives nothing */
		case UNIX_STREAM: active(AF_UNIX, SOCK_STREAM, 0, s); break;
		case ACCEPTED_PEER_INSIDE:
			len = loopback(AF_INET, listen_port, &ss);
			s->connect_err = connect(inside_client, (void *)&ss, len) ? errno : 0;
			fd = accept(listen_fd, NULL, NULL);
			s->accept_err = fd < 0 ? errno : 0;
			if (fd >= 0) {
				read_state(fd, s);
				close(fd);
			}
			break;
		case ACCEPTED_PEER_OUTSIDE: accepted_from_outside(where, s); break;
		case FOREIGN:
			len = loopback(AF_INET, 0, &ss);
			s->bind_err = bind(foreign, (void *)&ss, len) ? errno : 0;
			len = loopback(AF_INET, closed4, &ss);
			s->connect_err = connect(foreign, (void *)&ss, len) ? errno : 0;
			read_state(foreign, s);
			break;
		}
		runs_now(s->runs);
		for (int i = 0; i < nr_progs; i++)
			s->runs[i] -= before[i];
	}
}

void print_seen(const char *key, const struct seen *row, int with_runs)
{
	json_obj_open(key);
	for (int k = 0; k < NR_KINDS; k++) {
		const struct seen *s = &row[k];

		json_obj_open(kind_names[k]);
		json_str("socket", errno_name(s->socket_err));
		json_str("bind", errno_name(s->bind_err));
		json_str("connect", errno_name(s->connect_err));
		json_str("accept", errno_name(s->accept_err));
		if (s->made) {
			json_int("priority", s->prio);
			json_int("mark", s->mark);
			json_str("device", s->dev);
		}
		if (with_runs) {
			json_obj_open("runs");
			for (int i = 0; i < nr_progs; i++)
				json_int(bpf_program__name(progs[i]), s->runs[i]);
			json_obj_close();
		}
		json_obj_close();
	}
	json_obj_close();
}
