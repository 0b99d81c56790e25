/* The agent's file pushes (optionally zlib-compressed) and the wall clock. */
#include "agent.h"

void error_reply(struct buf *reply, const char *what, int err)
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

void ok_reply(struct buf *reply, double started)
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
void put_file(const char *path, unsigned mode, int compressed, const char *data, size_t len,
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

void set_clock(double seconds, struct buf *reply)
{
	double started = now();
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	if (clock_settime(CLOCK_REALTIME, &ts))
		return error_reply(reply, "clock_settime", errno);
	ok_reply(reply, started);
}

