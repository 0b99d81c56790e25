/* Shared by the guest drivers: JSON output, errno names, failures, the case table
 * (cgroups, sockets and attaching are in lib/).
 * Each driver prints exactly one JSON object on stdout and exits 0 when it could
 * observe the behaviour (whatever it was), including a kernel refusing a program
 * ({"refused": ...}, see refused()); set-up failures exit 2 with {"error": ...}.
 */
#ifndef KREGRESS_COMMON_H
#define KREGRESS_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"

static const char *errno_name(int err)
{
	const char *name;

	if (err == 0)
		return "OK";
	if (err == 524)		/* the kernel's own ENOTSUPP (e.g. no BPF trampoline on this arch): no libc name */
		return "ENOTSUPP";
	name = strerrorname_np(err);
	return name ? name : "E?";
}

/* Print {"error": ...} and exit 2: the driver could not set up its observation. */
static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("{\"error\": \"");
	for (char *p = msg; *p; p++)
		putchar(*p == '"' ? '\'' : *p);
	printf(" (errno %s)\"}\n", errno_name(saved));
	fflush(stdout);
	exit(2);
}

/* The kernel refused to load or attach a program: that is what this kernel does, an
 * observation for the test to judge, not a set-up failure. Prints
 * {"refused": {"stage", "program", "errno", "libbpf"}} and exits 0. */
static void refused(const char *stage, const char *program, int err, const char *libbpf_message)
{
	printf("{");
	json_need_comma = 0;
	json_obj_open("refused");
	json_str("stage", stage);
	json_str("program", program);
	json_str("errno", errno_name(err < 0 ? -err : err));
	json_str("libbpf", libbpf_message ? libbpf_message : "");
	json_obj_close();
	json_close();
	exit(0);
}

/* ---- cases: every scenario driver is `DRIVER CASE [ARG...]`, its cases in one table ---- */
#define MAX_CASE_ARGS 2

/* args: each one either "word|word" (one of these words) or a NAME in capitals (any
 * value, the case checks it); unused slots NULL. run gets argv from the case's name on. */
struct driver_case {
	const char *name;
	const char *args[MAX_CASE_ARGS];
	void (*run)(char **argv);
};

#define NR_CASES(table) (sizeof(table) / sizeof((table)[0]))

static int case_arg_fits(const char *spec, const char *arg)
{
	size_t len = strlen(arg);

	if (spec[strspn(spec, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_")] == 0)
		return 1;
	for (const char *at = spec; at; at = strchr(at, '|') ? strchr(at, '|') + 1 : NULL)
		if (!strncmp(at, arg, len) && (at[len] == '|' || at[len] == 0))
			return 1;
	return 0;
}

static int same_case_args(const struct driver_case *a, const struct driver_case *b)
{
	for (int k = 0; k < MAX_CASE_ARGS; k++)
		if ((a->args[k] || b->args[k]) && (!a->args[k] || !b->args[k] || strcmp(a->args[k], b->args[k])))
			return 0;
	return 1;
}

/* The usage line, made from the table; neighbours taking the same arguments share them:
 * "usage: DRIVER a|b | c get|set | d CYCLES" */
static void case_usage(const char *driver, const struct driver_case *cases, size_t n)
{
	char usage[512];
	size_t at = snprintf(usage, sizeof(usage), "usage: %s", driver);

	for (size_t i = 0; i < n && at < sizeof(usage); i++) {
		int shares_next = i + 1 < n && same_case_args(&cases[i], &cases[i + 1]);
		int first_of_group = i == 0 || !same_case_args(&cases[i - 1], &cases[i]);

		at += snprintf(usage + at, sizeof(usage) - at, "%s%s", first_of_group ? (i ? " | " : " ") : "|",
			       cases[i].name);
		for (int k = 0; !shares_next && k < MAX_CASE_ARGS && cases[i].args[k] && at < sizeof(usage); k++)
			at += snprintf(usage + at, sizeof(usage) - at, " %s", cases[i].args[k]);
	}
	errno = EINVAL;
	fail("%s", usage);
}

/* The case argv names, with exactly its arguments, each fitting its spec; else the usage. */
static const struct driver_case *pick_case(const char *driver, const struct driver_case *cases, size_t n,
					   int argc, char **argv)
{
	for (size_t i = 0; argc >= 2 && i < n; i++) {
		int nargs = 0, fits = 1;

		if (strcmp(argv[1], cases[i].name))
			continue;
		while (nargs < MAX_CASE_ARGS && cases[i].args[nargs])
			nargs++;
		for (int k = 0; fits && k < nargs && k + 2 < argc; k++)
			fits = case_arg_fits(cases[i].args[k], argv[k + 2]);
		if (fits && argc == nargs + 2)
			return &cases[i];
	}
	case_usage(driver, cases, n);
	return NULL;
}

#endif
