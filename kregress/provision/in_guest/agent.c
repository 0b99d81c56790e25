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
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* -- growing byte buffers */

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (!b->data) {
			fputs("agent: out of memory\n", stderr);
			_exit(70);
		}
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	buf_add(b, small, n < (int)sizeof(small) ? (size_t)n : sizeof(small) - 1);
}

/* -- JSON: the subset the host sends (objects, arrays, strings, numbers, true/false/null) */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct json {
	enum jtype type;
	double num;              /* J_NUM; J_BOOL: 0 or 1 */
	char *str;               /* J_STR, NUL-terminated UTF-8 */
	size_t n;                /* J_ARR, J_OBJ: number of items */
	struct json *items;      /* J_ARR, J_OBJ */
	char **keys;             /* J_OBJ */
};

struct parser {
	const char *at, *end;
	const char *error;
};

static void skip_space(struct parser *p)
{
	while (p->at < p->end && strchr(" \t\r\n", *p->at) && *p->at)
		p->at++;
}

static int fail(struct parser *p, const char *why)
{
	if (!p->error)
		p->error = why;
	return -1;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char out[4];
	size_t n;
	if (cp < 0x80) {
		out[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = 0xc0 | cp >> 6;
		out[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = 0xe0 | cp >> 12;
		out[1] = 0x80 | (cp >> 6 & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		out[0] = 0xf0 | cp >> 18;
		out[1] = 0x80 | (cp >> 12 & 0x3f);
		out[2] = 0x80 | (cp >> 6 & 0x3f);
		out[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	buf_add(b, out, n);
}

static int hex4(struct parser *p, unsigned *out)
{
	if (p->end - p->at < 4)
		return fail(p, "short \\u escape");
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = *p->at++;
		*out <<= 4;
		if (c >= '0' && c <= '9')
			*out |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*out |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*out |= c - 'A' + 10;
		else
			return fail(p, "bad \\u escape");
	}
	return 0;
}

static int parse_string(struct parser *p, char **out)
{
	struct buf b = {0};
	p->at++;    /* the opening quote */
	buf_add(&b, "", 0);
	while (p->at < p->end && *p->at != '"') {
		char c = *p->at++;
		if (c != '\\') {
			buf_add(&b, &c, 1);
			continue;
		}
		if (p->at >= p->end)
			break;
		c = *p->at++;
		const char *plain = strchr("\"\\/bfnrt", c);
		if (plain && c) {
			buf_add(&b, &"\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"], 1);
		} else if (c == 'u') {
			unsigned cp, low;
			if (hex4(p, &cp))
				break;
			if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->at >= 6 && p->at[0] == '\\' &&
			    p->at[1] == 'u') {
				p->at += 2;
				if (hex4(p, &low))
					break;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
			}
			put_utf8(&b, cp);
		} else {
			fail(p, "bad escape in a string");
			break;
		}
	}
	if (p->error || p->at >= p->end) {
		free(b.data);
		return fail(p, "unterminated string");
	}
	p->at++;
	*out = b.data;
	return 0;
}

static void json_free(struct json *v);

static int parse_value(struct parser *p, struct json *v, int depth)
{
	memset(v, 0, sizeof(*v));
	skip_space(p);
	if (depth > 32)
		return fail(p, "nested too deeply");
	if (p->at >= p->end)
		return fail(p, "unexpected end");
	char c = *p->at;
	if (c == '"') {
		v->type = J_STR;
		return parse_string(p, &v->str);
	}
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		v->type = c == '{' ? J_OBJ : J_ARR;
		p->at++;
		skip_space(p);
		if (p->at < p->end && *p->at == close) {
			p->at++;
			return 0;
		}
		for (;;) {
			v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
			if (v->type == J_OBJ)
				v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
			if (!v->items || (v->type == J_OBJ && !v->keys))
				return fail(p, "out of memory");
			memset(&v->items[v->n], 0, sizeof(*v->items));
			if (v->type == J_OBJ) {
				v->keys[v->n] = NULL;
				skip_space(p);
				if (p->at >= p->end || *p->at != '"')
					return v->n++, fail(p, "expected a key");
				if (parse_string(p, &v->keys[v->n]))
					return v->n++, -1;
				skip_space(p);
				if (p->at >= p->end || *p->at != ':')
					return v->n++, fail(p, "expected ':'");
				p->at++;
			}
			if (parse_value(p, &v->items[v->n++], depth + 1))
				return -1;
			skip_space(p);
			if (p->at < p->end && *p->at == close) {
				p->at++;
				return 0;
			}
			if (p->at >= p->end || *p->at != ',')
				return fail(p, v->type == J_OBJ ? "expected ',' or '}'" : "expected ',' or ']'");
			p->at++;
		}
	}
	static const struct { const char *word; enum jtype type; double num; } words[] = {
		{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t len = strlen(words[i].word);
		if ((size_t)(p->end - p->at) >= len && !memcmp(p->at, words[i].word, len)) {
			v->type = words[i].type;
			v->num = words[i].num;
			p->at += len;
			return 0;
		}
	}
	char number[64];
	size_t len = 0;
	while (p->at + len < p->end && strchr("+-0123456789.eE", p->at[len]) && p->at[len] &&
	       len < sizeof(number) - 1)
		len++;
	if (!len)
		return fail(p, "unexpected character");
	memcpy(number, p->at, len);
	number[len] = 0;
	char *rest;
	v->type = J_NUM;
	v->num = strtod(number, &rest);
	if (*rest)
		return fail(p, "bad number");
	p->at += len;
	return 0;
}

static void json_free(struct json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		json_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

static const struct json *member(const struct json *object, const char *key)
{
	for (size_t i = 0; object->type == J_OBJ && i < object->n; i++)
		if (object->keys[i] && !strcmp(object->keys[i], key))
			return &object->items[i];
	return NULL;
}

/* A JSON string of arbitrary bytes: ASCII only, invalid UTF-8 becomes U+FFFD. */
static void put_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	buf_str(out, "\"");
	for (size_t i = 0; i < len;) {
		unsigned c = u[i], cp, need;
		if (c < 0x80) {
			i++;
			if (c == '"' || c == '\\')
				buf_printf(out, "\\%c", c);
			else if (c == '\n')
				buf_str(out, "\\n");
			else if (c == '\t')
				buf_str(out, "\\t");
			else if (c < 0x20 || c == 0x7f)
				buf_printf(out, "\\u%04x", c);
			else
				buf_add(out, &c, 1);
			continue;
		}
		need = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
		need = c >= 0xf5 ? 0 : need;
		cp = need == 3 ? c & 0x07 : need == 2 ? c & 0x0f : c & 0x1f;
		size_t j = 1;
		for (; need && j <= need && i + j < len && (u[i + j] & 0xc0) == 0x80; j++)
			cp = cp << 6 | (u[i + j] & 0x3f);
		int valid = need && j == need + 1 && !(need == 2 && cp < 0x800) && !(need == 3 && cp < 0x10000) &&
			    cp < 0x110000 && !(cp >= 0xd800 && cp < 0xe000);
		if (!valid) {
			buf_str(out, "\\ufffd");
			i++;
			continue;
		}
		i += j;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			buf_printf(out, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		} else {
			buf_printf(out, "\\u%04x", cp);
		}
	}
	buf_str(out, "\"");
}

/* -- the kernel log */

static int kmsg_fd = -1;

/* From the first record the kernel still holds, not from its end: the first reply
 * carries the whole boot log (the host checks it and stores it with the snapshot). */
static void open_kmsg(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

/* The records since the last call, as a JSON array of "[  seconds] message" lines. */
static void put_kmsg(struct buf *out)
{
	char record[8192 + 1];
	int first = 1;
	buf_str(out, "[");
	while (kmsg_fd >= 0) {
		ssize_t n = read(kmsg_fd, record, sizeof(record) - 1);
		if (n < 0 && errno == EPIPE)
			continue;      /* records overwritten before we read them */
		if (n <= 0)
			break;
		record[n] = 0;
		/* "prio,seq,usec,flags;message\n" then " KEY=value" continuation lines */
		char *message = strchr(record, ';');
		if (!message)
			continue;
		*message++ = 0;
		message[strcspn(message, "\n")] = 0;
		unsigned long long usec = 0;
		char *field = strchr(record, ',');
		field = field ? strchr(field + 1, ',') : NULL;
		if (field)
			usec = strtoull(field + 1, NULL, 10);
		struct buf line = {0};
		buf_printf(&line, "[%5llu.%06llu] ", usec / 1000000, usec % 1000000);
		buf_str(&line, message);
		if (!first)
			buf_str(out, ",");
		first = 0;
		put_string(out, line.data, line.len);
		free(line.data);
	}
	buf_str(out, "]");
}

/* -- running a command */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read both pipes until EOF or the deadline; returns 1 when both reached EOF. */
static int collect(int fds[2], struct buf outputs[2], double deadline)
{
	struct pollfd polls[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
	int open_fds = 2;
	char chunk[65536];
	while (open_fds) {
		double left = deadline - now();
		if (left <= 0)
			break;
		if (poll(polls, 2, (int)(left * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (polls[i].fd < 0 || !polls[i].revents)
				continue;
			ssize_t n = read(polls[i].fd, chunk, sizeof(chunk));
			if (n > 0) {
				buf_add(&outputs[i], chunk, n);
			} else if (n == 0 || errno != EINTR) {
				polls[i].fd = -1;
				open_fds--;
			}
		}
	}
	return open_fds == 0;
}

static void kernel_stack(pid_t pid, struct buf *out)
{
	static const char *const names[] = {"stat", "wchan", "stack"};
	for (int i = 0; i < 3; i++) {
		char path[64], text[4096];
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, names[i]);
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
		if (n < 0) {
			buf_printf(out, "%s: %s\n", names[i], strerror(errno));
		} else {
			while (n > 0 && text[n - 1] == '\n')
				n--;
			text[n] = 0;
			buf_printf(out, "%s: ", names[i]);
			buf_str(out, text);
			buf_str(out, "\n");
		}
		if (fd >= 0)
			close(fd);
	}
}

static void sysrq(char key)
{
	int fd = open("/proc/sysrq-trigger", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, &key, 1) < 0) { /* best effort: the dump is for the report */ }
		close(fd);
	}
}

/* The child side of a command: its own session, stdin /dev/null, the request's env and cwd. */
static void exec_command(const struct json *argv, const struct json *env, const char *cwd, int out_w, int err_w)
{
	char **args = calloc(argv->n + 1, sizeof(char *));
	for (size_t i = 0; i < argv->n; i++)
		args[i] = argv->items[i].type == J_STR ? argv->items[i].str : "";
	setsid();
	int null = open("/dev/null", O_RDONLY);
	dup2(null, 0);
	dup2(out_w, 1);
	dup2(err_w, 2);
	for (size_t i = 0; env && env->type == J_OBJ && i < env->n; i++)
		if (env->items[i].type == J_STR)
			setenv(env->keys[i], env->items[i].str, 1);
	if (chdir(cwd) == 0)
		execvp(args[0], args);
	dprintf(2, "agent: cannot run %s: %s\n", args[0], strerror(errno));
	_exit(127);
}

static void run(const struct json *request, struct buf *reply)
{
	const struct json *argv = member(request, "argv");
	if (!argv || argv->type != J_ARR || !argv->n) {
		buf_str(reply, "{\"rc\":0,\"timed_out\":false,\"stdout\":\"\",\"stderr\":\"\",\"dmesg\":");
		put_kmsg(reply);
		buf_str(reply, ",\"seconds\":0.0}");
		return;
	}
	const struct json *timeout = member(request, "timeout"), *cwd = member(request, "cwd");
	double started = now();
	double limit = timeout && timeout->type == J_NUM ? timeout->num : 60;
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		buf_printf(reply, "{\"rc\":null,\"timed_out\":false,\"stdout\":\"\",\"stderr\":\"agent: pipe: %s\","
			   "\"dmesg\":[],\"seconds\":0.0,\"agent_error\":true}", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0)
		exec_command(argv, member(request, "env"), cwd && cwd->type == J_STR ? cwd->str : "/tmp",
			     out[1], err[1]);
	close(out[1]);
	close(err[1]);
	struct buf outputs[2] = {{0}, {0}}, stuck = {0};
	buf_add(&outputs[0], "", 0);
	buf_add(&outputs[1], "", 0);
	int fds[2] = {out[0], err[0]}, status = 0, timed_out = 0;
	if (pid < 0) {
		buf_printf(&outputs[1], "agent: cannot run %s: %s\n", argv->items[0].str, strerror(errno));
		status = 127 << 8;
	} else if (collect(fds, outputs, started + limit)) {
		waitpid(pid, &status, 0);
	} else {
		timed_out = 1;
		kernel_stack(pid, &stuck);
		sysrq('w');    /* blocked tasks, for the host's report, before anything is killed */
		kill(-pid, SIGKILL);
		collect(fds, outputs, now() + 5);
		if (waitpid(pid, &status, WNOHANG) <= 0)
			buf_str(&outputs[1], "process did not die after SIGKILL (blocked in the kernel?)");
	}
	close(out[0]);
	close(err[0]);
	if (timed_out) {
		buf_str(reply, "{\"rc\":null,\"timed_out\":true,");
	} else {
		int rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
		buf_printf(reply, "{\"rc\":%d,\"timed_out\":false,", rc);
	}
	buf_str(reply, "\"stdout\":");
	put_string(reply, outputs[0].data, outputs[0].len);
	buf_str(reply, ",\"stderr\":");
	if (timed_out) {
		struct buf message = {0};
		buf_printf(&message, "command %d timed out; its kernel side:\n", pid);
		buf_add(&message, stuck.data, stuck.len);
		buf_add(&message, outputs[1].data, outputs[1].len);
		put_string(reply, message.data, message.len);
		free(message.data);
	} else {
		put_string(reply, outputs[1].data, outputs[1].len);
	}
	buf_str(reply, ",\"dmesg\":");
	put_kmsg(reply);
	buf_printf(reply, ",\"seconds\":%.4f}", now() - started);
	free(outputs[0].data);
	free(outputs[1].data);
	free(stuck.data);
}

static int send_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

/* -- files and the clock */

static void error_reply(struct buf *reply, const char *what, int err)
{
	struct buf why = {0};
	buf_printf(&why, "agent: %s: %s", what, strerror(err));
	buf_str(reply, "{\"rc\":null,\"timed_out\":false,\"stdout\":\"\",\"stderr\":");
	put_string(reply, why.data, why.len);
	free(why.data);
	buf_str(reply, ",\"dmesg\":");
	put_kmsg(reply);
	buf_str(reply, ",\"seconds\":0.0,\"agent_error\":true}");
}

static void ok_reply(struct buf *reply, double started)
{
	buf_str(reply, "{\"rc\":0,\"timed_out\":false,\"stdout\":\"\",\"stderr\":\"\",\"dmesg\":");
	put_kmsg(reply);
	buf_printf(reply, ",\"seconds\":%.4f}", now() - started);
}

static int make_parents(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = 0;
		if (mkdir(dir, 0755) && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return 0;
}

/* Inflate zlib data into fd. Pushing compressed drivers halves what crosses the SSH
 * connection, whose decryption in the guest is slow under TCG. */
static int write_inflated(int fd, const char *data, size_t len)
{
	z_stream z = {0};
	unsigned char out[65536];
	int status = inflateInit(&z);
	if (status != Z_OK)
		return errno = EINVAL, -1;
	z.next_in = (unsigned char *)data;
	z.avail_in = len;
	do {
		z.next_out = out;
		z.avail_out = sizeof(out);
		status = inflate(&z, Z_NO_FLUSH);
		if (status != Z_OK && status != Z_STREAM_END)
			break;
		if (send_all(fd, (char *)out, sizeof(out) - z.avail_out))
			break;
	} while (status != Z_STREAM_END);
	inflateEnd(&z);
	return status == Z_STREAM_END ? 0 : (errno = errno ? errno : EILSEQ, -1);
}

/* Write data to path through a temporary file renamed into place: a reader never sees half. */
static void put_file(const char *path, unsigned mode, int compressed, const char *data, size_t len,
		     struct buf *reply)
{
	double started = now();
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.kr-%d", path, getpid());
	if (make_parents(path))
		return error_reply(reply, path, errno);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_reply(reply, tmp, errno);
	errno = 0;
	int bad = (compressed ? write_inflated(fd, data, len) : send_all(fd, data, len)) || fchmod(fd, mode & 07777);
	int err = errno;
	if (close(fd) && !bad) {
		bad = 1;
		err = errno;
	}
	if (!bad && rename(tmp, path)) {
		bad = 1;
		err = errno;
	}
	if (bad) {
		unlink(tmp);
		return error_reply(reply, path, err);
	}
	ok_reply(reply, started);
}

static void set_clock(double seconds, struct buf *reply)
{
	double started = now();
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	if (clock_settime(CLOCK_REALTIME, &ts))
		return error_reply(reply, "clock_settime", errno);
	ok_reply(reply, started);
}

/* -- serving the host */

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
			bad = fail(&p, "trailing data");
		if (!bad && request.type != J_OBJ)
			bad = fail(&p, "a request is a JSON object");
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
			bad = fail(&p, "put needs a path and a size");
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
