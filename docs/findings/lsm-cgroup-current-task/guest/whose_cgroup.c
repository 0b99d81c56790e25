// SPDX-License-Identifier: GPL-2.0
/* Reproducer driver (standalone: libbpf and its skeleton only). Run as root in a guest
 * with cgroup2 at /sys/fs/cgroup:
 *
 *   kregress exec --from docs/findings/lsm-cgroup-current-task --kernel ID -- whose_cgroup
 *
 * 1. Cgroups A and B; deny_bind attached to A (BPF_LSM_CGROUP).
 * 2. Socket sa created while the task is in A, socket sb while it is in B.
 * 3. From B, bind(sa); from A, bind(sb).
 * 69fd337a975c ("bpf: per-cgroup lsm flavor") says hooks whose first argument is a
 * struct socket run the programs of the socket's cgroup: sa is denied, sb is not.
 * Running the current task's cgroup's programs gives the reverse. Prints one JSON
 * object; exit 0 whatever the verdict, 2 when the kernel cannot run the test. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "whose_cgroup.skel.h"

#define CGROUP_ROOT "/sys/fs/cgroup/kregress-whose-cgroup"

static void give_up(const char *what, int err)
{
	printf("{\"error\": \"%s: %s\"}\n", what, strerror(err));
	exit(2);
}

static void join(const char *cgroup)
{
	char path[256], pid[32];
	snprintf(path, sizeof(path), CGROUP_ROOT "/%s/cgroup.procs", cgroup);
	int fd = open(path, O_WRONLY);
	int len = snprintf(pid, sizeof(pid), "%d", getpid());
	if (fd < 0 || write(fd, pid, len) != len)
		give_up(path, errno);
	close(fd);
}

static const char *bind_loopback(int fd)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		return "OK";
	return errno == EPERM ? "EPERM" : strerror(errno);
}

int main(void)
{
	struct whose_cgroup *skel;
	struct bpf_link *link;
	struct utsname uts;
	int cg_a, sa, sb;

	libbpf_set_print(NULL);
	mkdir(CGROUP_ROOT, 0755);
	mkdir(CGROUP_ROOT "/a", 0755);
	mkdir(CGROUP_ROOT "/b", 0755);
	cg_a = open(CGROUP_ROOT "/a", O_RDONLY | O_DIRECTORY);
	if (cg_a < 0)
		give_up("cgroup " CGROUP_ROOT "/a", errno);
	skel = whose_cgroup__open_and_load();
	if (!skel)
		give_up("loading an lsm_cgroup program (needs v6.0+ and the bpf LSM)", errno);
	link = bpf_program__attach_cgroup(skel->progs.deny_bind, cg_a);
	if (!link)
		give_up("attaching to cgroup a", errno);

	join("a");
	sa = socket(AF_INET, SOCK_DGRAM, 0);
	join("b");
	sb = socket(AF_INET, SOCK_DGRAM, 0);
	const char *sa_from_b = bind_loopback(sa);	/* task in b */
	join("a");
	const char *sb_from_a = bind_loopback(sb);	/* task in a */
	join("..");

	int by_socket = !strcmp(sa_from_b, "EPERM") && !strcmp(sb_from_a, "OK");
	int by_task = !strcmp(sa_from_b, "OK") && !strcmp(sb_from_a, "EPERM");
	uname(&uts);
	printf("{\"kernel\": \"%s\", \"socket_of_a_bound_from_b\": \"%s\", \"socket_of_b_bound_from_a\": \"%s\", "
	       "\"program_runs\": %u, \"programs_of\": \"%s\"}\n", uts.release, sa_from_b, sb_from_a,
	       skel->bss->runs, by_socket ? "socket's cgroup" : by_task ? "current task's cgroup" : "mixed");
	bpf_link__destroy(link);
	whose_cgroup__destroy(skel);
	close(sa);
	close(sb);
	rmdir(CGROUP_ROOT "/a");
	rmdir(CGROUP_ROOT "/b");
	rmdir(CGROUP_ROOT);
	return 0;
}
