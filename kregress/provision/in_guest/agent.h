/* What the guest agent's parts share (agent.c serves the host; see its opening comment):
 * growing buffers, the JSON requests and replies, the kernel log, commands, files. */
#ifndef KREGRESS_AGENT_H
#define KREGRESS_AGENT_H

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


/* buf.c: growing byte buffers, always NUL-terminated */
struct buf {
	char *data;
	size_t len, cap;
};

void buf_add(struct buf *b, const void *data, size_t len);
void buf_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...);

/* json.c: the subset the host sends (objects, arrays, strings, numbers, true/false/null) */
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


void skip_space(struct parser *p);
/* Records the first error; returns -1. */
int parse_fail(struct parser *p, const char *why);
int parse_value(struct parser *p, struct json *v, int depth);
void json_free(struct json *v);
const struct json *member(const struct json *object, const char *key);
/* A JSON string of arbitrary bytes: ASCII only, invalid UTF-8 becomes U+FFFD. */
void put_string(struct buf *out, const char *s, size_t len);

/* kmsg.c: the kernel log, one open file shared by every connection */
void open_kmsg(void);
/* The records since the last call, as a JSON array of "[  seconds] message" lines. */
void put_kmsg(struct buf *out);

/* command.c: running a command with a timeout */
double now(void);
void run(const struct json *request, struct buf *reply);
int send_all(int fd, const char *data, size_t len);

/* files.c: files and the clock, and the replies that carry no command */
void error_reply(struct buf *reply, const char *what, int err);
void ok_reply(struct buf *reply, double started);
/* Write data to path through a temporary file renamed into place: a reader never sees half. */
void put_file(const char *path, unsigned mode, int compressed, const char *data, size_t len, struct buf *reply);
void set_clock(double seconds, struct buf *reply);

#endif
