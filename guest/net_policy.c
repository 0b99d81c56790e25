/* net_policy <case>: the rest of the LPC 2022 per-cgroup networking policy with plain
 * cgroup hooks, the policy read from cgroup local storage (see docs/net_policy.md):
 *   tos      IP_TOS / IPV6_TCLASS allow-list in cgroup/setsockopt; the TOS on the wire,
 *            set with setsockopt and with a cmsg on sendmsg (which bypasses the hook)
 *   tos_bind the same list held at bind (bpf_getsockopt in cgroup/bind4, bind6) against
 *            sockets whose TOS was set before the programs came
 *   ports    bind-port limits in cgroup/bind4 and bind6; autobind (port 0, connect()
 *            without bind) in a netns whose local port range is under the limit
 *   rewrite  cap_check|no_cap_check: a bind rewritten to a port under
 *            ip_unprivileged_port_start, the program returning 1 or 3, the task with and
 *            without CAP_NET_BIND_SERVICE
 *   hide     eperm|errno: IPv4 refused by cgroup/sock_create, with the default errno or
 *            with EAFNOSUPPORT through bpf_set_retval
 *   storage  one storage read and written by programs of three attach types
 *
 * A program a kernel refuses where the case expects that on some kernels (the rewrite
 * returning 3, bpf_set_retval, the shared storage key) is printed as
 * {"loaded": false, "load_errno", "verifier"}; any other refusal with refused().
 */
#include "net_policy/driver.h"

static const struct driver_case cases[] = {
	{ "tos", {}, case_tos },
	{ "tos_bind", {}, case_tos_bind },
	{ "ports", {}, case_ports },
	{ "rewrite", { "cap_check|no_cap_check" }, case_rewrite },
	{ "hide", { "eperm|errno" }, case_hide },
	{ "storage", {}, case_storage },
};

int main(int argc, char **argv)
{
	const struct driver_case *picked = pick_case("net_policy", cases, NR_CASES(cases), argc, argv);

	case_name = picked->name;
	libbpf_set_print(keep_libbpf_log);
	picked->run(argv + 1);
	return 0;
}
