/* The agent's view of the kernel log: /dev/kmsg from its first record on. */
#include "agent.h"

static int kmsg_fd = -1;

/* From the first record the kernel still holds, not from its end: the first reply
 * carries the whole boot log (the host checks it and stores it with the snapshot). */
void open_kmsg(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

/* The records since the last call, as a JSON array of "[  seconds] message" lines. */
void put_kmsg(struct buf *out)
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

