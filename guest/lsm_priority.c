/* lsm_priority <case>: per-cgroup SO_PRIORITY and socket policy with lsm_cgroup,
 * observed from userspace with getsockopt(SO_PRIORITY) and socket()/bind() errnos.
 *
 * Cases (see docs/lsm_priority.md):
 *   probe        only whether the kernel accepts an lsm_cgroup program
 *   post_create  socket_post_create sets the priority in its cgroup, not in a sibling
 *   accept       accepted sockets need inet_csk_clone, whichever cgroup calls accept()
 *   whose_cgroup whether a hook runs the programs of the socket's or the task's cgroup
 *   from_outside PORT DIR  the same for a handshake from outside the guest (a forwarded port)
 *   compare      cgroup/sock vs lsm_cgroup on active, accepted and AF_PACKET sockets
 *   override     a cgroup/setsockopt guard stops the task, not bpf_setsockopt
 *   net_raw_xmit AF_PACKET send-only policy and an errno chosen with bpf_set_retval
 *   hierarchy    programs on parent and child cgroups: order and last writer
 *   detach       destroying the links removes every effect
 *   shim_lifetime a socket right after the hook's last link is destroyed, and right
 *                after a program is attached again (the hook's shim may outlive it)
 *
 * Every case first checks that the kernel takes lsm_cgroup at all; when it does not
 * (5.10), it prints {"lsm_cgroup_supported": false, "stage": ..., "load_errno": ...}
 * and exits 0: that is an observation, not a set-up failure.
 */
#include "lsm_priority/driver.h"

static const struct driver_case cases[] = {
	{ "probe", {}, case_probe },
	{ "post_create", {}, case_post_create },
	{ "accept", {}, case_accept },
	{ "whose_cgroup", {}, case_whose_cgroup },
	{ "from_outside", { "PORT", "DIR" }, case_from_outside },
	{ "compare", {}, case_compare },
	{ "override", {}, case_override },
	{ "net_raw_xmit", {}, case_net_raw_xmit },
	{ "hierarchy", {}, case_hierarchy },
	{ "detach", {}, case_detach },
	{ "shim_lifetime", {}, case_shim_lifetime },
};

int main(int argc, char **argv)
{
	const struct driver_case *picked = pick_case("lsm_priority", cases, NR_CASES(cases), argc, argv);

	case_name = picked->name;
	libbpf_set_print(keep_first_warn);
	probe_lsm_cgroup();
	picked->run(argv + 1);
	return 0;
}
