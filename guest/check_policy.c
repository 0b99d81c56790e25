/* Guest driver for `kregress check-progs`: the user's socket-policy programs (cgroup/sock_create,
 * cgroup/post_bind4/6, cgroup/sock_release, lsm_cgroup/...) against sockets of every kind made
 * in their cgroup, without the programs and with them.
 *
 *   check_policy OBJECT.bpf.o [MAPS_FILE|-] [lsm_cgroup=no]
 *
 * Loads only those programs (every other one is listed with "checked": false; check_progs
 * takes the sockopt ones), fills MAPS_FILE's entries into its maps; lsm_cgroup=no leaves lsm_cgroup programs unloaded, where the
 * kernel's facts say it lacks or cannot use lsm_cgroup ("skipped": "lsm_cgroup"). In a network
 * namespace of its own, with a cgroup for the policy and another one beside it, it makes each
 * kind of socket (kinds.c) in a round without the programs, then attaches every program with a
 * link on the policy's cgroup and runs the round again, counting each program's runs per kind.
 *
 * Prints one JSON object: the programs, "without", "with" (each kind's errnos, SO_PRIORITY,
 * SO_MARK, bound device; "with" also the runs). A refused load or attach is an observation
 * ("refused"), exit 0; bad input exits 2 with {"error": ...}.
 */
#include "check_policy/driver.h"

#include <sys/utsname.h>

struct bpf_program *progs[MAX_PROGS];
int nr_progs;

static int is_policy(struct bpf_program *prog)
{
	enum bpf_attach_type type = bpf_program__expected_attach_type(prog);

	if (bpf_program__type(prog) == BPF_PROG_TYPE_CGROUP_SOCK)
		return type == BPF_CGROUP_INET_SOCK_CREATE || type == BPF_CGROUP_INET4_POST_BIND ||
		       type == BPF_CGROUP_INET6_POST_BIND || type == BPF_CGROUP_INET_SOCK_RELEASE;
	return bpf_program__type(prog) == BPF_PROG_TYPE_LSM && type == BPF_LSM_CGROUP;
}

int main(int argc, char **argv)
{
	struct seen without[NR_KINDS], with[NR_KINDS];
	int links[MAX_PROGS], lsm_cgroup = !(argc > 3 && !strcmp(argv[3], "lsm_cgroup=no")), cg_fd;
	struct bpf_program *prog;
	struct bpf_object *obj;
	struct places where;
	struct utsname uts;

	buffer_output();
	if (argc < 2)
		fail("usage: check_policy OBJECT.bpf.o [MAPS_FILE|-] [lsm_cgroup=no]");
	uname(&uts);
	libbpf_set_print(keep_libbpf_log);
	json_open();
	json_str("release", uts.release);
	json_str("run_counts", errno_name(enable_run_counts()));

	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		program_refused("open", NULL, errno);
	json_arr_open("programs");
	bpf_object__for_each_program(prog, obj) {
		int lsm = bpf_program__type(prog) == BPF_PROG_TYPE_LSM;
		int checked = is_policy(prog) && (lsm_cgroup || !lsm) && nr_progs < MAX_PROGS;

		list_program(prog, checked);
		if (is_policy(prog) && lsm && !lsm_cgroup)
			json_str("skipped", "lsm_cgroup");
		json_obj_close();
		if (checked)
			progs[nr_progs++] = prog;
		else
			bpf_program__set_autoload(prog, false);     /* not this driver's kind, or not here */
	}
	json_arr_close();
	if (!nr_progs) {
		json_close();
		return 0;
	}
	if (bpf_object__load(obj))
		program_refused("load", NULL, errno);
	fill_maps(&obj, 1, argc > 2 ? argv[2] : "-");

	enter_private_netns();
	cg_fd = cgroup_create(NULL, "policy", where.policy, sizeof(where.policy));
	cgroup_create(NULL, "outside", where.outside, sizeof(where.outside));

	begin_round(&where);
	observe_kinds(&where, without);
	end_round();

	begin_round(&where);
	for (int i = 0; i < nr_progs; i++) {
		int err = attach(progs[i], cg_fd, ATTACH_LINK(&links[i]));

		if (err)
			program_refused("attach", bpf_program__name(progs[i]), err);
	}
	observe_kinds(&where, with);
	for (int i = 0; i < nr_progs; i++)
		link_destroy(links[i]);
	end_round();

	print_seen("without", without, 0);
	print_seen("with", with, 1);
	json_close();
	bpf_object__close(obj);
	return 0;
}
