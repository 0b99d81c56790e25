/* Guest driver for `kregress check-progs`: the user's cgroup sockopt programs against a
 * fixed battery of socket calls, with and without the programs.
 *
 *   check_progs OBJECT.bpf.o [MAPS_FILE|-]
 *
 * Opens OBJECT with libbpf and loads its cgroup/getsockopt and cgroup/setsockopt
 * programs; every other program is left unloaded and listed with "checked": false (another
 * driver may check it: check_policy). Without such programs it stops after the list. MAPS_FILE
 * (made by the host from --maps JSON) has lines "MAP KEY VALUE", KEY and VALUE either a
 * decimal integer (little-endian, the map's size) or 0x<hex bytes> of exactly that size.
 *
 * In a network namespace and a cgroup of its own it makes one socket of each kind, then
 * runs the battery without programs, then once per program with only that program
 * attached, each followed by another run without: an answer that differs between the two
 * runs around a program is volatile (time, counters), not the program's doing.
 *
 * Prints one JSON object. A refused load or attach is an observation ("refused": the
 * errno and libbpf's log, which carries the kernel's verifier log), exit 0; bad input
 * exits 2 with {"error": ...}.
 */
#include "check_progs/driver.h"

#include <sys/utsname.h>

long page;
static struct outcome results[MAX_PROGS + 1][2][MAX_CALLS];   /* [run][with?][call] */

int main(int argc, char **argv)
{
	struct bpf_program *progs[MAX_PROGS], *prog;
	struct bpf_object *obj;
	struct utsname uts;
	int nr_progs = 0, nr_calls, cg_fd, link;
	char cg_path[256];

	buffer_output();
	if (argc < 2)
		fail("usage: check_progs OBJECT.bpf.o [MAPS_FILE|-]");
	page = sysconf(_SC_PAGESIZE);
	uname(&uts);
	libbpf_set_print(keep_libbpf_log);
	json_open();
	json_int("page_size", page);
	json_str("release", uts.release);
	json_str("libbpf", libbpf_version_string());

	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		program_refused("open", NULL, errno);
	json_arr_open("programs");
	bpf_object__for_each_program(prog, obj) {
		enum bpf_attach_type type = bpf_program__expected_attach_type(prog);
		int checked = bpf_program__type(prog) == BPF_PROG_TYPE_CGROUP_SOCKOPT &&
			      (type == BPF_CGROUP_GETSOCKOPT || type == BPF_CGROUP_SETSOCKOPT) &&
			      nr_progs < MAX_PROGS;

		list_program(prog, checked);
		json_obj_close();
		if (checked)
			progs[nr_progs++] = prog;
		else
			bpf_program__set_autoload(prog, false);    /* not this driver's kind */
	}
	json_arr_close();
	/* nothing of this kind and no maps to fill: nothing to load. Loading anyway would refuse an
	 * object whose other programs have CO-RE relocations on a kernel without BTF (bookworm's
	 * ppc64el and s390x), though no program of it is loaded here */
	if (nr_progs || (argc > 2 && strcmp(argv[2], "-"))) {
		if (bpf_object__load(obj))
			program_refused("load", NULL, errno);
		fill_maps(&obj, 1, argc > 2 ? argv[2] : "-");
	}
	if (!nr_progs) {        /* nothing of this kind: no battery to run (the other drivers may check them) */
		json_key("calls");
		printf("[]");
		json_key("runs");
		printf("[]");
		json_close();
		return 0;
	}

	enter_private_netns();
	cg_fd = cgroup_create(NULL, "progs", cg_path, sizeof(cg_path));
	cgroup_join(cg_path);
	make_sockets();
	nr_calls = battery_calls();     /* the sockets decide which calls there are */
	json_obj_open("setup");
	json_int("peergroups", nr_groups);
	json_int("peergroups_mid", nr_mid_groups);     /* 0: no unix-mid socket (4K pages) */
	for (int slot = 0; slot < 2; slot++) {
		json_obj_open(slot ? "ip6tables_filter" : "iptables_filter");
		json_bool("built", tables[slot].built);
		json_str("errno", errno_name(tables[slot].err));
		json_int("rules", tables[slot].rules);
		json_int("size", tables[slot].size);
		json_obj_close();
	}
	json_obj_close();
	print_calls();

	run_battery(results[0][0]);
	for (int i = 0; i < nr_progs; i++) {
		int err = attach(progs[i], cg_fd, ATTACH_LINK(&link));

		if (err)
			program_refused("attach", bpf_program__name(progs[i]), err);
		run_battery(results[i][1]);
		link_destroy(link);
		run_battery(results[i + 1][0]);
	}
	json_key("runs");
	printf("[");
	for (int i = 0; i < nr_progs; i++) {
		printf("%s{", i ? ", " : "");
		json_need_comma = 0;
		json_str("program", bpf_program__name(progs[i]));
		print_row("without_before", results[i][0], nr_calls);
		print_row("with", results[i][1], nr_calls);
		print_row("without_after", results[i + 1][0], nr_calls);
		printf("}");
	}
	printf("]");
	json_need_comma = 1;
	json_close();
	bpf_object__close(obj);
	return 0;
}

