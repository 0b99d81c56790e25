/* lsm_priority's shared parts (driver.h): skeleton instances, links, the clone witness's
 * record, the output header and the probe every case runs first. */
#include "driver.h"

#include <net/if.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>

const char *case_name;

/* ---- libbpf: its messages go to stderr; the first error line is kept for the JSON ---- */
char libbpf_first_warn[200];

int keep_first_warn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (level == LIBBPF_WARN && !libbpf_first_warn[0]) {
		size_t n = strcspn(line, "\n");

		if (n >= sizeof(libbpf_first_warn))
			n = sizeof(libbpf_first_warn) - 1;
		memcpy(libbpf_first_warn, line, n);
		libbpf_first_warn[n] = 0;
	}
	return fputs(line, stderr);
}


/* ---- skeleton instances: one per priority value, only the named programs loaded ---- */
struct lsm_priority *open_instance(__u32 prio)
{
	struct lsm_priority *skel = lsm_priority__open();
	struct bpf_program *prog;

	if (!skel)
		fail("opening the lsm_priority skeleton");
	skel->rodata->prio = prio;
	skel->rodata->page_size = sysconf(_SC_PAGESIZE);
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	return skel;
}

struct lsm_priority *load_instance(__u32 prio, ...)
{
	struct lsm_priority *skel = open_instance(prio);
	struct bpf_program *prog;
	const char *name;
	va_list ap;

	va_start(ap, prio);
	while ((name = va_arg(ap, const char *))) {
		prog = bpf_object__find_program_by_name(skel->obj, name);
		if (!prog)
			fail("no program %s in lsm_priority.bpf.c", name);
		bpf_program__set_autoload(prog, true);
	}
	va_end(ap);
	if (lsm_priority__load(skel))
		refused("load", case_name, errno, libbpf_first_warn);
	return skel;
}

int link_to(struct bpf_program *prog, int cgroup_fd)
{
	/* For lsm_cgroup this is BPF_LINK_CREATE with BPF_LSM_CGROUP: programs on
	 * one cgroup and hook stack up (multi-attach), nothing is replaced. */
	int link, err = attach(prog, cgroup_fd, ATTACH_LINK(&link));

	if (err)
		refused("attach", bpf_program__name(prog), err, libbpf_first_warn);
	return link;
}

/* The clone witness (a plain BPF LSM program) sees every inet_csk_clone call, so
 * each handshake's context is known even when no lsm_cgroup program ran for it. */
int attach_clone_witness(struct lsm_priority *skel)
{
	int link, err = attach(skel->progs.clone_witness, NO_TARGET, ATTACH_LINK(&link));

	if (err)
		refused("attach", "clone_witness", err, libbpf_first_warn);
	return link;
}


/* Each inet_csk_clone call: whose task (this driver or not) and which cgroup, by name
 * among the case's cgroups ("root" or "elsewhere" otherwise). */
void print_clone_contexts(struct lsm_priority *skel, const char *names[], const char *paths[], int n)
{
	__u32 calls = skel->bss->clone_calls;

	json_int("clone_calls", calls);
	json_arr_open("clone_contexts");
	for (__u32 i = 0; i < calls && i < CLONE_CONTEXTS; i++) {
		const struct clone_context *seen = &skel->bss->clone_contexts[i];
		const char *where = seen->cgroup_id == cgroup_id_of(CGROUP_ROOT) ? "root" : "elsewhere";

		for (int k = 0; k < n; k++)
			if (seen->cgroup_id == cgroup_id_of(paths[k]))
				where = names[k];
		json_elem_obj_open();
		json_bool("driver_task", seen->tgid == (__u32)getpid());
		json_str("cgroup", where);
		json_str("comm", seen->comm);
		json_obj_close();
	}
	json_arr_close();
}


/* ---- sockets ---- */
int new_socket_prio(int family, int type, int protocol)
{
	int fd = must_socket(family, type, protocol);
	int prio = prio_of(fd);

	close(fd);
	return prio;
}

const char *packet_bind(int fd, unsigned short protocol)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(protocol),
				   .sll_ifindex = if_nametoindex("lo") };

	return bind(fd, (struct sockaddr *)&sll, sizeof(sll)) ? errno_name(errno) : "OK";
}

/* ---- output: every case prints the same header, then its own values ---- */
void begin_output(void)
{
	char lsms[256] = "";
	FILE *f = fopen("/sys/kernel/security/lsm", "r");

	if (f) {
		if (!fgets(lsms, sizeof(lsms), f))
			lsms[0] = 0;
		fclose(f);
	}
	lsms[strcspn(lsms, "\n")] = 0;
	json_open();
	json_str("case", case_name);
	json_bool("lsm_cgroup_supported", 1);
	json_str("active_lsms", lsms);
}


/* Before anything else: does this kernel take an lsm_cgroup program at all? A
 * refusal (load or attach) is the result on kernels before 69fd337a975c. */
void probe_lsm_cgroup(void)
{
	struct lsm_priority *skel = open_instance(0);
	const char *stage = "load";
	int link = -1, err, cg;

	bpf_program__set_autoload(skel->progs.probe, true);
	err = lsm_priority__load(skel);
	if (!err) {
		stage = "attach";
		cg = cgroup_create(NULL, "probe", NULL, 0);
		err = -attach(skel->progs.probe, cg, ATTACH_LINK(&link));
		close(cg);
	}
	if (err) {
		json_open();
		json_str("case", case_name);
		json_bool("lsm_cgroup_supported", 0);
		json_str("stage", stage);
		json_str("load_errno", errno_name(-err));
		json_str("libbpf", libbpf_first_warn);
		json_close();
		exit(0);
	}
	link_destroy(link);
	lsm_priority__destroy(skel);
}

int attached_count(int cg)
{
	__u32 ids[16], flags[16];
	/* Per-program attach flags are required with prog_ids for BPF_LSM_CGROUP:
	 * programs on different hooks of one cgroup may have different flags. */
	LIBBPF_OPTS(bpf_prog_query_opts, opts, .prog_ids = ids, .prog_attach_flags = flags, .prog_cnt = 16);

	if (bpf_prog_query_opts(cg, BPF_LSM_CGROUP, &opts))
		return -errno;
	return opts.prog_cnt;
}

