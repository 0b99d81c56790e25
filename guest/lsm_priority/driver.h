/* What lsm_priority's cases share: the priority values, skeleton instances with only
 * the named programs loaded, links (a refusal ends the case as an observation), the
 * output header and the lsm_cgroup probe. */
#ifndef KREGRESS_LSM_PRIORITY_DRIVER_H
#define KREGRESS_LSM_PRIORITY_DRIVER_H

#include "../common.h"
#include "../lib/attach.h"
#include "../lib/cgroup.h"
#include "../lib/net.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../progs/lsm_priority.h"
#include "lsm_priority.skel.h"

/* Distinct from each other and from 0 (the default), so a value names who set it. */
#define PRIO		7	/* the cgroup under test */
#define SOCK_PRIO	5	/* cgroup/sock_create in the comparison */
#define PARENT_PRIO	3	/* parent cgroup in the hierarchy case */
#define TASK_PRIO	1	/* what the task tries to set itself */
#define ANCHOR_PRIO	2	/* the hierarchy case's anchor, on a cgroup of its own */
#define LIFETIME_ROUNDS	10	/* per scheduling policy in the shim_lifetime case */

extern const char *case_name;
extern char libbpf_first_warn[200];

int keep_first_warn(enum libbpf_print_level level, const char *fmt, va_list ap);
struct lsm_priority *open_instance(__u32 prio);
/* An instance with only the named programs loaded (NULL-terminated list). */
struct lsm_priority *load_instance(__u32 prio, ...);
/* A link of prog on the cgroup (its fd), or the refusal printed and exit 0. */
int link_to(struct bpf_program *prog, int cgroup_fd);
int attach_clone_witness(struct lsm_priority *skel);
void print_clone_contexts(struct lsm_priority *skel, const char *names[], const char *paths[], int n);
/* Priority of a fresh socket (closed again). */
int new_socket_prio(int family, int type, int protocol);
const char *packet_bind(int fd, unsigned short protocol);
/* lsm_cgroup programs attached directly to this cgroup, as the kernel lists them. */
int attached_count(int cg);
void begin_output(void);
void probe_lsm_cgroup(void);

/* The cases: socket_cases.c, policy_cases.c, shim_cases.c */
void case_probe(char **argv);
void case_post_create(char **argv);
void case_accept(char **argv);
void case_whose_cgroup(char **argv);
void case_from_outside(char **argv);
void case_compare(char **argv);
void case_override(char **argv);
void case_net_raw_xmit(char **argv);
void case_hierarchy(char **argv);
void case_detach(char **argv);
void case_shim_lifetime(char **argv);

#endif
