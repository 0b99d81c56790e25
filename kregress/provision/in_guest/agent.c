/* The guest agent. Started by the guest's init before the SSH server, it listens on the
 * guest's loopback (--listen PORT); the host reaches it through its SSH connection (a
 * direct-tcpip channel). One JSON request per line in, one JSON reply per line out:
 *
 *   {"argv": [...], "timeout": S, "env": {...}, "cwd": "/tmp"}  run a command
 *   {}                                                          only collect kernel log lines
 *   {"put": PATH, "size": N, "mode": M} then N raw bytes        write a file (parents made);
 *                                                               "zlib": true: the bytes are
 *                                                               zlib-compressed
 *   {"clock": S}                                                set the wall clock (a restored
 *                                                               guest's resumes from its save)
 *   {"bye": true}                                               end this connection
 *
 * Each reply carries the kernel log lines that appeared since the previous reply
 * (/dev/kmsg, one open file shared by every connection, read from the kernel's first
 * line), so the host gets the boot log first and then every test exactly the lines
 * produced while it ran. A command that outlives its timeout gets
 * its kernel stack recorded and a blocked-task dump (sysrq w) written to the log before
 * it is killed.
 *
 * C and statically linked (the host builds it) because under TCG a Python agent's start
 * was the longest step of every boot, and so that the agent depends on nothing in the
 * guest image. A connection is served by a child process of its own: one that died with
 * a restored snapshot's old QEMU never blocks the next. */
#include "agent.h"

/* More bytes from the host into pending; -1 when the connection is over. */
static int read_more(int fd, struct buf *pending)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf_add(pending, chunk, n);
		return 0;
	}
}

/* Hello, then one reply per request line, until the host closes the connection or says bye. */
static void serve(int fd)
{
	struct utsname uts;
	struct buf hello = {0}, pending = {0};
	uname(&uts);
	buf_str(&hello, "{\"hello\":");
	put_string(&hello, uts.release, strlen(uts.release));
	buf_str(&hello, "}\n");
	if (send_all(fd, hello.data, hello.len))
		return;
	for (;;) {
		char *newline;
		while (!pending.len || !(newline = memchr(pending.data, '\n', pending.len)))
			if (read_more(fd, &pending))
				return;
		size_t line_len = newline - pending.data;
		struct parser p = {pending.data, newline, NULL};
		struct json request;
		struct buf reply = {0};
		int bad = parse_value(&p, &request, 0);
		skip_space(&p);
		if (!bad && p.at != p.end)
			bad = parse_fail(&p, "trailing data");
		if (!bad && request.type != J_OBJ)
			bad = parse_fail(&p, "a request is a JSON object");
		const struct json *bye = bad ? NULL : member(&request, "bye");
		if (bye && bye->type == J_BOOL && bye->num) {
			/* the host is about to save the guest: the listener is back in accept() */
			send_all(fd, "{\"bye\":true}\n", 13);
			return;
		}
		const struct json *put = bad ? NULL : member(&request, "put");
		const struct json *size = bad ? NULL : member(&request, "size");
		const struct json *clock = bad ? NULL : member(&request, "clock");
		size_t consumed = line_len + 1;
		if (put && put->type == J_STR && size && size->type == J_NUM && size->num >= 0) {
			/* the file's bytes follow the request line */
			size_t want = consumed + (size_t)size->num;
			while (pending.len < want)
				if (read_more(fd, &pending))
					return;
			const struct json *mode = member(&request, "mode"), *zlib = member(&request, "zlib");
			put_file(put->str, mode && mode->type == J_NUM ? (unsigned)mode->num : 0644,
				 zlib && zlib->type == J_BOOL && zlib->num, pending.data + consumed, (size_t)size->num,
				 &reply);
			consumed = want;
		} else if (put) {
			bad = parse_fail(&p, "put needs a path and a size");
		} else if (clock && clock->type == J_NUM) {
			set_clock(clock->num, &reply);
		}
		if (bad) {
			buf_str(&reply, "{\"rc\":null,\"timed_out\":false,\"stdout\":\"\",\"stderr\":");
			struct buf why = {0};
			buf_printf(&why, "agent: bad request at byte %zu: %s", (size_t)(p.at - pending.data), p.error);
			put_string(&reply, why.data, why.len);
			free(why.data);
			buf_str(&reply, ",\"dmesg\":");
			put_kmsg(&reply);
			buf_str(&reply, ",\"seconds\":0.0,\"agent_error\":true}");
		} else if (!reply.len) {
			run(&request, &reply);
		}
		json_free(&request);
		buf_str(&reply, "\n");
		int sent = send_all(fd, reply.data, reply.len);
		free(reply.data);
		memmove(pending.data, pending.data + consumed, pending.len - consumed);
		pending.len -= consumed;
		if (sent)
			return;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--listen")) {
		fputs("usage: agent --listen PORT\n", stderr);
		return 2;
	}
	open_kmsg();
	int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(server, (struct sockaddr *)&addr, sizeof(addr)) || listen(server, 4)) {
		fprintf(stderr, "KREGRESS: FAIL agent cannot listen on 127.0.0.1:%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	char uptime[64] = "?";
	int fd = open("/proc/uptime", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, uptime, sizeof(uptime) - 1);
		uptime[n > 0 ? n : 0] = 0;
		uptime[strcspn(uptime, " ")] = 0;
		close(fd);
	}
	fprintf(stderr, "KREGRESS: PHASE agent_listening %s\n", uptime);
	signal(SIGCHLD, SIG_IGN);     /* connection processes reap themselves */
	for (;;) {
		int conn = accept4(server, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		if (fork() == 0) {
			signal(SIGCHLD, SIG_DFL);    /* this process waits for its commands */
			close(server);
			serve(conn);
			_exit(0);
		}
		close(conn);
	}
}

