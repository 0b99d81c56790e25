/* The drivers' own cgroups: /sys/fs/cgroup/kregress-<pid>-<name>, removed at exit. */
#ifndef KREGRESS_CGROUP_H
#define KREGRESS_CGROUP_H

#include <stddef.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Create a cgroup (parent == NULL: under the root) and return an O_RDONLY fd to it. */
int cgroup_create(const char *parent, const char *name, char *path_out, size_t len);
/* Move the calling process into the cgroup at path. */
void cgroup_join(const char *path);
/* cgroup v2: the directory's inode number is the cgroup id. */
unsigned long long cgroup_id_of(const char *path);

#endif
