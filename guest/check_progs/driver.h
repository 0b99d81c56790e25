/* What check_progs' parts share: the page size, the sockets, the battery's outcomes. */
#ifndef KREGRESS_CHECK_PROGS_DRIVER_H
#define KREGRESS_CHECK_PROGS_DRIVER_H

#include "../common.h"
#include "../lib/attach.h"
#include "../lib/cgroup.h"
#include "../lib/net.h"
#include "../lib/objects.h"

#include <netinet/in.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define SO_ORIGINAL_DST 80
#define SO_NOBODY_HANDLES 9876      /* an option no kernel handler knows */
#define EXTRA_GROUPS 76             /* SO_PEERGROUPS past a page: PAGE_SIZE/4 + 76 groups */
#define SMALL_PAGE 4096             /* the page most programs' constants assume */
#define EXTRA_RULES 8               /* iptables table past a page */
#define MAX_PROGS 16
#define MAX_CALLS 256
#define PATTERN 0xa5                /* the caller's buffer before the call */

extern long page;


/* sockets.c */
/* UNIX_MID: only where the page is larger than 4 KiB (-1 elsewhere): its SO_PEERGROUPS answer
 * lies between 4 KiB and the page, whole to BPF, so a cut at 4096 is the program's own */
enum sock_kind { TCP, UDP, RAW4, RAW6, PACKET, UNIX_PAIR, NETLINK, UNIX_MID, NR_SOCKS };
extern const char *sock_names[NR_SOCKS];
extern int socks[NR_SOCKS];
extern int nr_groups, nr_mid_groups;
struct filter_table { int built; int err; int rules; int size; };
extern struct filter_table tables[2];   /* [0] IPv4, [1] IPv6 */
void make_sockets(void);

/* battery.c */
struct outcome { int err; int optlen; unsigned long long digest; int null; };
int battery_calls(void);
void run_battery(struct outcome *row);
void print_calls(void);
void print_row(const char *key, const struct outcome *row, int n);


#endif
