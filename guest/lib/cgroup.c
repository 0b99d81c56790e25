/* cgroup.h: making, joining and naming the drivers' cgroups; failures end in fail(). */
#include "../common.h"
#include "cgroup.h"

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

int cgroup_create(const char *parent, const char *name, char *path_out, size_t len)
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

void cgroup_join(const char *path)
{
	char procs[300];
	int fd;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	fd = open(procs, O_WRONLY);
	if (fd < 0 || dprintf(fd, "%d\n", getpid()) < 0)
		fail("join %s", path);
	close(fd);
}

unsigned long long cgroup_id_of(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		fail("stat %s", path);
	return st.st_ino;
}
