/* net_policy hide and storage: IPv4 hiding in cgroup/sock_create (the default errno, or
 * one chosen with bpf_set_retval), and one cgroup storage shared by the programs of
 * several attach types on the cgroup (7d9c3427894f), against the per-attach-type key. */
#include "driver.h"

static void sockets_from_here(void)
{
	json_str("inet_stream", socket_result(AF_INET, SOCK_STREAM, 0));
	json_str("inet_dgram", socket_result(AF_INET, SOCK_DGRAM, 0));
	json_str("inet6_stream", socket_result(AF_INET6, SOCK_STREAM, 0));
	json_str("unix_stream", socket_result(AF_UNIX, SOCK_STREAM, 0));
}

/* hide eperm|errno: AF_INET refused by the program returning 0, or with EAFNOSUPPORT. */
void case_hide(char **argv)
{
	int chosen = !strcmp(argv[1], "errno");
	const char *name = chosen ? "sock_policy_errno" : "sock_policy";
	struct net_policy *skel = load_or_report(1, name, NULL);
	struct container_policy pol = default_policy();
	struct bpf_program *prog;
	char path[256];
	int cg;

	if (!skel)
		return;
	prog = bpf_object__find_program_by_name(skel->obj, name);
	cg = cgroup_create(NULL, "hide", path, sizeof(path));
	attach_to(prog, cg);
	write_policy(skel, path, &pol);
	cgroup_join(path);

	begin_output();
	json_bool("loaded", 1);
	json_obj_open("hidden");
	sockets_from_here();
	json_obj_close();
	pol.permitted = PERMIT_INET;		/* the manager permits IPv4 again */
	write_policy(skel, path, &pol);
	json_obj_open("permitted");
	sockets_from_here();
	json_obj_close();
	json_close();
	net_policy__destroy(skel);
}

/* The per-attach-type storage of one hook on the cgroup: 0 when there is none. */
static __u32 typed_value(struct net_policy *skel, const char *cgroup, enum bpf_attach_type type)
{
	struct bpf_cgroup_storage_key key;
	__u32 value = 0;

	memset(&key, 0, sizeof(key));
	key.cgroup_inode_id = cgroup_id_of(cgroup);
	key.attach_type = type;
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.per_type), &key, &value))
		return 0;
	return value;
}

/* storage: the manager writes the policy once; cgroup/sock_create, setsockopt and bind4
 * read it, and what sock_create writes, the other two read. The per-type map beside it. */
void case_storage(char **argv)
{
	struct net_policy *skel = load_or_report(1, "sock_policy", "tos_allow_list", "bind4_limit",
							   "typed_stamp", "typed_read", NULL);
	struct container_policy pol = default_policy(), seen;
	const char *allowed, *forbidden, *bind_in, *bind_out;
	char path[256];
	int cg, fd, bound;

	if (!skel)
		return;
	cg = cgroup_create(NULL, "storage", path, sizeof(path));
	enter_private_netns();
	attach_to(skel->progs.sock_policy, cg);
	attach_to(skel->progs.tos_allow_list, cg);
	attach_to(skel->progs.bind4_limit, cg);
	attach_to(skel->progs.typed_stamp, cg);
	attach_to(skel->progs.typed_read, cg);
	pol.permitted = PERMIT_INET;
	write_policy(skel, path, &pol);
	cgroup_join(path);

	fd = must_socket(AF_INET, SOCK_DGRAM, 0);	/* sock_create: the stamp */
	allowed = set_int_opt(fd, IPPROTO_IP, IP_TOS, TOS_ALLOWED);
	forbidden = set_int_opt(fd, IPPROTO_IP, IP_TOS, TOS_FORBIDDEN);
	close(fd);
	bind_in = bind_port(AF_INET, SOCK_STREAM, PORT_LO, &bound);
	if (bound >= 0)
		close(bound);
	bind_out = bind_port(AF_INET, SOCK_STREAM, PORT_REFUSED, &bound);
	if (bound >= 0)
		close(bound);
	read_policy(skel, path, &seen);

	begin_output();
	json_bool("loaded", 1);
	json_int("stamp_written", STAMP);
	json_obj_open("shared");
	json_str("tos_allowed", allowed);
	json_str("tos_forbidden", forbidden);
	json_str("bind_in_range", bind_in);
	json_str("bind_refused_port", bind_out);
	json_int("stamp", seen.stamp);
	json_int("creates", seen.creates);
	json_int("stamp_seen_at_setsockopt", seen.stamp_seen_at_setsockopt);
	json_int("stamp_seen_at_bind", seen.stamp_seen_at_bind);
	json_bool("manager_policy_kept", seen.port_lo == PORT_LO && seen.tos_allowed[TOS_ALLOWED] &&
		  seen.permitted == PERMIT_INET);
	json_obj_close();
	json_obj_open("per_attach_type");
	json_int("sock_create", typed_value(skel, path, BPF_CGROUP_INET_SOCK_CREATE));
	json_int("setsockopt", typed_value(skel, path, BPF_CGROUP_SETSOCKOPT));
	json_obj_close();
	json_close();
	net_policy__destroy(skel);
}
