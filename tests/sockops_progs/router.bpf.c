// SPDX-License-Identifier: GPL-2.0
/* A pattern from the field (an L4 balancer's sockops router): once configured, it wants header
 * options for the handshake only, so it turns WRITE_HDR_OPT on at TCP_LISTEN and clears it, with
 * PARSE_UNKNOWN_HDR_OPT, at PASSIVE/ACTIVE_ESTABLISHED. With an empty config map it does nothing
 * (router.maps.json configures it). */
#include "common_sockops.h"

#define MAGIC_ROUTE 0xD4D4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} router_config SEC(".maps");

SEC("sockops")
int route(struct bpf_sock_ops *skops)
{
	__u32 zero = 0, *enabled = bpf_map_lookup_elem(&router_config, &zero);

	if (!enabled || !*enabled)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		flags_on(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		flags_off(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG);
		break;
	default:
		if (is_synack(skops))
			write_option(skops, MAGIC_ROUTE);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
