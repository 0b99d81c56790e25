/* What check_sockops' parts share: the user's sockops programs and ours, one scenario's
 * attach order, and what the wire showed. */
#ifndef KREGRESS_CHECK_SOCKOPS_DRIVER_H
#define KREGRESS_CHECK_SOCKOPS_DRIVER_H

#include "../common.h"
#include "../lib/attach.h"
#include "../lib/cgroup.h"
#include "../lib/net.h"
#include "../lib/objects.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../progs/check_sockops.h"

#define MAX_PROGS 8
#define SERVER_PORT 40123
#define EXCHANGES 3             /* data segments each way per connection */
#define MAX_OPTION_KEYS 16

/* Options on data segments, one direction: kind (and, for 253/254, the 16-bit ExID) -> count */
struct wire_side {
	int data;
	int nr_keys;
	unsigned int keys[MAX_OPTION_KEYS];    /* kind << 16 | ExID */
	int counts[MAX_OPTION_KEYS];
};
struct wire { struct wire_side to_server, to_client; };

/* wire.c: an AF_PACKET socket on lo, opened before a connection, read after it */
int wire_open(void);
void wire_read(int fd, struct wire *out);
void wire_print(const struct wire *w);

#endif
