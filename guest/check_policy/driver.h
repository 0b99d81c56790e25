/* What check_policy's parts share: the kinds of socket a policy may reach, what is read off
 * each, and the programs whose run counts are kept. */
#ifndef KREGRESS_CHECK_POLICY_DRIVER_H
#define KREGRESS_CHECK_POLICY_DRIVER_H

#include "../common.h"
#include "../lib/attach.h"
#include "../lib/cgroup.h"
#include "../lib/net.h"
#include "../lib/objects.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define MAX_PROGS 16

/* Sockets of each kind, made (or used) by a task in the policy's cgroup. */
enum kind { TCP4, TCP6, UDP4, RAW4, PACKET, UNIX_STREAM, ACCEPTED_PEER_INSIDE, ACCEPTED_PEER_OUTSIDE,
	    FOREIGN, NR_KINDS };
extern const char *kind_names[NR_KINDS];

/* What a policy sets or refuses on one socket, and how often each program ran meanwhile. */
struct seen {
	int made;                       /* a socket to read came of it */
	int socket_err, bind_err, connect_err, accept_err;
	int prio, mark;
	char dev[IFNAMSIZ];
	long long runs[MAX_PROGS];
};

struct places {
	char policy[256], outside[256];  /* cgroup paths: the policy's, another one */
};

extern struct bpf_program *progs[MAX_PROGS];
extern int nr_progs;

/* kinds.c: one round of every kind. begin_round() makes, before the policy is attached, what
 * exists before it in a fleet (a listening service, a peer's socket, a socket made in another
 * cgroup); end_round() closes them. */
void begin_round(const struct places *where);
void observe_kinds(const struct places *where, struct seen out[NR_KINDS]);
void end_round(void);
void print_seen(const char *key, const struct seen *row, int with_runs);

#endif
