/* Shared by the guest drivers: cgroups of the driver's own, JSON output, errno names.
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

#define CGROUP_ROOT "/sys/fs/cgroup"

/* ---- JSON: one flat-or-nested object, written as we go ---- */
static int json_need_comma;

static void json_open(void) { printf("{"); json_need_comma = 0; }
static void json_close(void) { printf("}\n"); fflush(stdout); }

static void json_key(const char *key)
{
	printf("%s\"%s\": ", json_need_comma ? ", " : "", key);
	json_need_comma = 1;
}

static void json_str(const char *key, const char *value)
{
	json_key(key);
	putchar('"');
	for (const char *p = value; p && *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_int(const char *key, long long value) { json_key(key); printf("%lld", value); }
static void json_bool(const char *key, int value) { json_key(key); printf(value ? "true" : "false"); }
/* A nested object: json_obj_open("x"); json_int(...); json_obj_close(); */
static void json_obj_open(const char *key) { json_key(key); printf("{"); json_need_comma = 0; }
static void json_obj_close(void) { printf("}"); json_need_comma = 1; }
/* An array of objects: json_arr_open("x"); { json_elem_obj_open(); ...; json_obj_close(); } json_arr_close(); */
static void json_arr_open(const char *key) { json_key(key); printf("["); json_need_comma = 0; }
static void json_elem_obj_open(void) { printf("%s{", json_need_comma ? ", " : ""); json_need_comma = 0; }
static void json_arr_close(void) { printf("]"); json_need_comma = 1; }

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

/* ---- cgroups: /sys/fs/cgroup/kregress-<pid>-<name>, removed at exit ---- */
#define MAX_CGROUPS 8
static char cgroup_paths[MAX_CGROUPS][256];
static int nr_cgroups;

static void cgroups_cleanup(void)
{
	int fd = open(CGROUP_ROOT "/cgroup.procs", O_WRONLY);

	if (fd >= 0) {      /* move back to the root so the directories can go */
		dprintf(fd, "%d\n", getpid());
		close(fd);
	}
	for (int i = nr_cgroups - 1; i >= 0; i--)
		rmdir(cgroup_paths[i]);
}

/* Create a cgroup (parent == NULL: under the root) and return an O_RDONLY fd to it. */
static int cgroup_create(const char *parent, const char *name, char *path_out, size_t len)
{
	char path[256];
	int fd;

	if (parent)
		snprintf(path, sizeof(path), "%s/%s", parent, name);
	else
		snprintf(path, sizeof(path), CGROUP_ROOT "/kregress-%d-%s", getpid(), name);
	if (mkdir(path, 0755) && errno != EEXIST)
		fail("mkdir %s", path);
	if (nr_cgroups == 0)
		atexit(cgroups_cleanup);
	if (nr_cgroups < MAX_CGROUPS)
		snprintf(cgroup_paths[nr_cgroups++], sizeof(cgroup_paths[0]), "%s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		fail("open %s", path);
	if (path_out)
		snprintf(path_out, len, "%s", path);
	return fd;
}

/* Move the calling process into the cgroup at path. */
static void cgroup_join(const char *path)
{
	char procs[300];
	int fd;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	fd = open(procs, O_WRONLY);
	if (fd < 0 || dprintf(fd, "%d\n", getpid()) < 0)
		fail("join %s", path);
	close(fd);
}

/* A network namespace of the driver's own with lo up: loopback TCP and AF_PACKET
 * sockets stay off the guest's interfaces. Call it before attaching programs, since it
 * makes an AF_INET socket. */
static void enter_private_netns(void)
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

#endif
