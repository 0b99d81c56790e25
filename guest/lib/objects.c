/* objects.h: a user's object in a driver: the JSON kept in memory until exit, and libbpf's
 * words kept for a refused load or attach. */
#include "../common.h"
#include "objects.h"

#include <string.h>
#include <bpf/bpf.h>

/* The JSON is built in memory: a set-up failure half-way (fail(), common.h) must leave
 * exactly its own {"error": ...} object on stdout, not a half-printed one before it. */
static FILE *real_stdout;
static char *out_text;
static size_t out_len;

static void flush_output(void)
{
	const char *error;

	fflush(stdout);
	error = strstr(out_text, "{\"error\": \"");
	fputs(error ? error : out_text, real_stdout);
	fflush(real_stdout);
}

void buffer_output(void)
{
	real_stdout = stdout;
	stdout = open_memstream(&out_text, &out_len);
	atexit(flush_output);
}

/* ---- libbpf's words, kept for a refused load or attach ---- */
static char libbpf_log[32768];
static size_t libbpf_log_len;

int keep_libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (level == LIBBPF_DEBUG || n <= 0)
		return 0;
	if (libbpf_log_len + n >= sizeof(libbpf_log))     /* keep the tail: the verifier's verdict is last */
		libbpf_log_len = 0;
	memcpy(libbpf_log + libbpf_log_len, line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
	libbpf_log_len += n < (int)sizeof(line) ? n : (int)sizeof(line) - 1;
	libbpf_log[libbpf_log_len] = 0;
	return 0;
}

void libbpf_log_reset(void)
{
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
}

/* The verifier's last words: the load log's last line before its statistics. */
void verifier_verdict(char *out, size_t len)
{
	static const char *const skip[] = { "processed ", "verification time", "stack depth", "-- ", "libbpf: " };
	char copy[sizeof(libbpf_log)], *end, *line;

	snprintf(copy, sizeof(copy), "%s", libbpf_log);
	snprintf(out, len, "%s", "");
	end = strstr(copy, "-- END PROG LOAD LOG --");
	if (!end)
		return;
	*end = 0;
	while ((line = strrchr(copy, '\n'))) {
		int skipped = line[1] == 0;

		for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]) && !skipped; k++)
			skipped = !strncmp(line + 1, skip[k], strlen(skip[k]));
		if (!skipped) {
			snprintf(out, len, "%s", line + 1);
			return;
		}
		*line = 0;
	}
}

void list_program(struct bpf_program *prog, int checked)
{
	json_elem_obj_open();
	json_str("name", bpf_program__name(prog));
	json_str("section", bpf_program__section_name(prog));
	json_bool("checked", checked);
}

int enable_run_counts(void)
{
	int fd = open("/proc/sys/kernel/bpf_stats_enabled", O_WRONLY), err = 0;

	if (fd < 0 || write(fd, "1", 1) != 1)
		err = errno;
	if (fd >= 0)
		close(fd);
	return err;
}

long long run_count(struct bpf_program *prog)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) ? -1 : (long long)info.run_cnt;
}

void program_refused(const char *stage, const char *prog, int err)
{
	json_obj_open("refused");
	json_str("stage", stage);
	json_str("program", prog ? prog : "");
	json_str("errno", errno_name(err));
	json_str("strerror", strerror(err));
	json_str("libbpf_log", libbpf_log);
	json_obj_close();
	json_close();
	exit(0);
}
