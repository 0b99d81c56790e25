/* The agent's commands: run with the request's env and cwd, output collected until a
 * deadline; a command past it gets its kernel stack and a blocked-task dump recorded. */
#include "agent.h"

double now(void)
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

void run(const struct json *request, struct buf *reply)
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

int send_all(int fd, const char *data, size_t len)
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

