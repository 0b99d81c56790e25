/* Shared by progs/lsm_priority.bpf.c and guest/lsm_priority.c: what the clone witness
 * records for each inet_csk_clone call. */
#ifndef LSM_PRIORITY_H
#define LSM_PRIORITY_H

#define CLONE_CONTEXTS 8

struct clone_context {
	__u32 tgid;
	__u64 cgroup_id;
	char comm[16];
};

#endif
