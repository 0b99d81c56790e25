/* What net_policy's cases share: skeleton instances with only the named programs loaded
 * (a refusal kept, for the cases that expect one on some kernels), the policy in cgroup
 * storage, loopback addresses of either family, CAP_NET_BIND_SERVICE on and off. */
#ifndef KREGRESS_NET_POLICY_DRIVER_H
#define KREGRESS_NET_POLICY_DRIVER_H

#include "../common.h"
#include "../lib/attach.h"
#include "../lib/cgroup.h"
#include "../lib/net.h"
#include "../lib/objects.h"

#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../progs/net_policy.h"
#include "net_policy.skel.h"

#define ABOVE_LIMIT	20000	/* a port over PORT_LIMIT: the policy leaves it alone */

extern const char *case_name;


/* Open, set rewrite_ret, load only the named programs (NULL-terminated). A refusal the case
 * expects on some kernels is printed as {"loaded": false, "load_errno", "verifier"} (NULL). */
struct net_policy *load_or_report(__u32 rewrite_ret, const char *first, ...);
/* The same, a refusal printed with refused() (a kernel refusing it is judged as such). */
struct net_policy *must_load(const char *first, ...);
/* Attached with BPF_F_ALLOW_MULTI, or the refusal printed and exit 0. */
void attach_to(struct bpf_program *prog, int cgroup_fd);

/* The manager's side of the storage: written after attaching (the storage exists from then). */
void write_policy(struct net_policy *skel, const char *cgroup, const struct container_policy *pol);
void read_policy(struct net_policy *skel, const char *cgroup, struct container_policy *pol);
struct container_policy default_policy(void);

/* Loopback address of the family (127.0.0.1 or ::1) with a port; the length. */
socklen_t loopback(int family, unsigned short port, struct sockaddr_storage *out);
unsigned short local_port(int fd);
/* bind() of a fresh socket: "OK" or the errno name; *fd_out keeps the socket (or -1). */
const char *bind_port(int family, int type, unsigned short port, int *fd_out);
void set_bind_service(int on);
void set_local_port_range(int lo, int hi);
const char *family_name(int family);

void begin_output(void);

/* The cases: tos.c, bind.c, hide.c */
void case_tos(char **argv);
void case_tos_bind(char **argv);
void case_ports(char **argv);
void case_rewrite(char **argv);
void case_hide(char **argv);
void case_storage(char **argv);

#endif
