/* Guest driver for `kregress check-progs`: the user's sockops programs, alone, together and
 * beside a header-option program of ours, over loopback TCP connections with data both ways.
 *
 *   check_sockops [reference=no] MAPS_FILE|- OBJECT.bpf.o [OBJECT.bpf.o ...]
 *
 * reference=no: the kernel lacks header-option callbacks (the facts say), which our reference
 * needs: the sockops programs are listed with "skipped": "sockops_hdr_opt" and nothing runs.
 *
 * Loads only the objects' sockops programs (others are listed with "checked": false); with
 * several objects (several teams' programs on one cgroup) a program is named OBJECT/PROGRAM. In a
 * network namespace and a cgroup of its own, each scenario attaches programs to the cgroup in
 * a given order (links), listens, connects, accepts, sends EXCHANGES data segments each way and
 * closes, while an AF_PACKET socket on lo records the options on every data segment (wire.c).
 * Our programs (progs/check_sockops.bpf.c): the reference, which writes its own option on every
 * segment as another team's program would, and a read-only probe, attached last, which records
 * the socket's callback flags after each op. Scenarios: the reference alone, with and without
 * the probe (the probe must change nothing); each user program alone, before the reference and
 * after it, and with our restorer after it; with several programs, all of them together. User
 * scenarios are named "user:...", ours plainly, so no program name can take ours.
 *
 * Prints one JSON object; a refused load or attach is an observation ("refused"), exit 0.
 */
#include "check_sockops/driver.h"

#include <netinet/tcp.h>
#include <sys/utsname.h>

#include "check_sockops.skel.h"

enum { REF = 100, PROBE = 101, RESTORER = 102, WORD_A = 103, WORD_B = 104, END = -1 };

#define MAX_OBJECTS 8

static struct bpf_program *user[MAX_PROGS];
static char labels[MAX_PROGS][160];     /* the program's name, or OBJECT/PROGRAM with several objects */
static int nr_user;
static struct check_sockops *ours;

static struct bpf_program *program_of(int slot)
{
	switch (slot) {
	case REF: return ours->progs.reference;
	case PROBE: return ours->progs.probe;
	case RESTORER: return ours->progs.restorer;
	case WORD_A: return ours->progs.cb_word_a;
	case WORD_B: return ours->progs.cb_word_b;
	default: return user[slot];
	}
}

static const char *label_of(int slot)
{
	return slot < MAX_PROGS ? labels[slot] : bpf_program__name(program_of(slot));
}

/* One connection with data both ways; the programs see both ends (one cgroup). */
static void exchange(void)
{
	char data[100] = { 0 }, got[100];
	unsigned short port;
	int listener = tcp_listener(SERVER_PORT, &port), client = tcp_connect(port), server = tcp_accept(listener);

	tcp_nodelay(client);
	tcp_nodelay(server);
	for (int i = 0; i < EXCHANGES; i++) {
		send_all(client, data, sizeof(data));
		if (recv(server, got, sizeof(got), MSG_WAITALL) != sizeof(got))
			fail("receiving on the server side");
		send_all(server, data, sizeof(data));
		if (recv(client, got, sizeof(got), MSG_WAITALL) != sizeof(got))
			fail("receiving on the client side");
	}
	close(client);
	close(server);
	close(listener);
}

/* Per side and op the probe saw: the flags after the programs ran ("probe"), or how often the
 * op reached the cgroup's programs ("callbacks"). */
static void print_per_op(const char *key, int flags)
{
	char op_name[8], text[16];

	json_obj_open(key);
	for (int side = 0; side < NR_SIDES; side++) {
		const struct probe_record *seen = &ours->bss->probe_seen[side];

		json_obj_open(side == SIDE_PASSIVE ? "passive" : "active");
		for (int op = 0; op < NR_OPS; op++) {
			if (!seen->seen[op])
				continue;
			snprintf(op_name, sizeof(op_name), "%d", op);
			if (flags) {
				snprintf(text, sizeof(text), "0x%02x", seen->flags[op]);
				json_str(op_name, text);
			} else {
				json_int(op_name, seen->seen[op]);
			}
		}
		json_obj_close();
	}
	json_obj_close();
}

static void print_probe(void)
{
	print_per_op("probe", 1);
	print_per_op("callbacks", 0);
}

static void print_reference(void)
{
	json_obj_open("reference");
	for (int side = 0; side < NR_SIDES; side++) {
		const struct reference_counts *c = &ours->bss->reference_seen[side];

		json_obj_open(side == SIDE_PASSIVE ? "passive" : "active");
		json_int("len_calls", c->len_calls);
		json_int("written_data", c->written_data);
		json_int("parse_calls", c->parse_calls);
		json_int("seen_data", c->seen_data);
		json_obj_close();
	}
	json_obj_close();
}

static void scenario(const char *name, int cg, const int *order)
{
	long long before[MAX_PROGS];
	int links[MAX_PROGS + 4], n = 0, err = 0, uses_ref = 0, uses_probe = 0, uses_writers = 0, capture;
	struct wire wire;

	memset(ours->bss->reference_seen, 0, sizeof(ours->bss->reference_seen));
	memset(ours->bss->probe_seen, 0, sizeof(ours->bss->probe_seen));
	ours->data->writers = (struct writers_record){ .restore_ret = { 1, 1 }, .word_a_ret = 1, .word_b_ret = 1,
						       .word_get_ret = 1 };
	for (int i = 0; i < nr_user; i++)
		before[i] = run_count(user[i]);
	for (; order[n] != END; n++) {
		uses_ref |= order[n] == REF;
		uses_probe |= order[n] == PROBE;
		uses_writers |= order[n] == RESTORER || order[n] == WORD_A;
		err = attach(program_of(order[n]), cg, ATTACH_LINK(&links[n]));
		if (err)
			program_refused("attach", bpf_program__name(program_of(order[n])), err);
	}
	capture = wire_open();
	exchange();
	usleep(20000);          /* the last segments reach the capture */
	wire_read(capture, &wire);
	for (int i = 0; i < n; i++)
		link_destroy(links[i]);

	json_elem_obj_open();
	json_str("name", name);
	json_arr_open("order");
	for (int i = 0; i < n; i++)
		printf("%s\"%s\"", i ? ", " : "", label_of(order[i]));
	json_arr_close();
	wire_print(&wire);
	if (uses_ref)
		print_reference();
	if (uses_probe)
		print_probe();
	if (uses_writers) {
		const struct writers_record *w = &ours->data->writers;

		json_obj_open("writers");
		json_int("restore_passive", w->restore_ret[SIDE_PASSIVE]);
		json_int("restore_active", w->restore_ret[SIDE_ACTIVE]);
		json_int("word_a", w->word_a_ret);
		json_int("word_b", w->word_b_ret);
		json_int("word_get", w->word_get_ret);
		json_int("word_after", w->word_after);
		json_obj_close();
	}
	json_obj_open("runs");
	for (int i = 0; i < nr_user; i++)
		json_int(labels[i], run_count(user[i]) - before[i]);
	json_obj_close();
	json_obj_close();
}

/* OBJECT's stem: /tmp/kregress/progs/router.bpf.o -> router */
static void stem_of(const char *path, char *out, size_t len)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	snprintf(out, len, "%.*s", (int)strcspn(base, "."), base);
}

int main(int argc, char **argv)
{
	struct bpf_object *objs[MAX_OBJECTS];
	struct bpf_program *prog;
	struct utsname uts;
	char cg_path[256], name[400], stem[64];
	int reference = !(argc > 1 && !strcmp(argv[1], "reference=no"));
	int cg, order[MAX_PROGS + 3], nr_objs, link;

	buffer_output();
	argv += !reference;
	argc -= !reference;
	nr_objs = argc - 2;
	if (argc < 3 || nr_objs > MAX_OBJECTS)
		fail("usage: check_sockops [reference=no] MAPS_FILE|- OBJECT.bpf.o [OBJECT.bpf.o ...] (at most %d)",
		     MAX_OBJECTS);
	uname(&uts);
	libbpf_set_print(keep_libbpf_log);
	json_open();
	json_str("release", uts.release);
	json_arr_open("programs");
	for (int o = 0; o < nr_objs; o++) {
		objs[o] = bpf_object__open_file(argv[o + 2], NULL);
		if (!objs[o])
			program_refused("open", NULL, errno);
		stem_of(argv[o + 2], stem, sizeof(stem));
		bpf_object__for_each_program(prog, objs[o]) {
			int sockops = bpf_program__type(prog) == BPF_PROG_TYPE_SOCK_OPS;
			int checked = sockops && reference && nr_user < MAX_PROGS;

			list_program(prog, checked);
			if (sockops && !reference)
				json_str("skipped", "sockops_hdr_opt");
			if (checked) {
				if (nr_objs > 1)
					snprintf(labels[nr_user], sizeof(labels[0]), "%s/%s", stem, bpf_program__name(prog));
				else
					snprintf(labels[nr_user], sizeof(labels[0]), "%s", bpf_program__name(prog));
				json_str("label", labels[nr_user]);
				user[nr_user++] = prog;
			} else {
				bpf_program__set_autoload(prog, false);
			}
			json_obj_close();
		}
	}
	json_arr_close();
	for (int o = 0; o < nr_objs && nr_user; o++)
		if (bpf_object__load(objs[o]))
			program_refused("load", NULL, errno);
	if (nr_objs > 1) {      /* several objects: every --maps entry must be some object's, sockops or not */
		for (int o = 0; o < nr_objs && !nr_user; o++)
			if (bpf_object__load(objs[o]))
				program_refused("load", NULL, errno);
		fill_maps(objs, nr_objs, argv[1]);
	}
	if (!nr_user) {
		json_close();
		return 0;
	}
	if (nr_objs == 1)
		fill_maps(objs, nr_objs, argv[1]);
	ours = check_sockops__open();
	if (!ours)
		fail("opening our own sockops programs");
	ours->rodata->server_port = SERVER_PORT;
	if (check_sockops__load(ours))
		program_refused("load", "reference", errno);
	if (enable_run_counts())
		fail("kernel.bpf_stats_enabled");
	enter_private_netns();
	cg = cgroup_create(NULL, "sockops", cg_path, sizeof(cg_path));
	cgroup_join(cg_path);
	/* a refused attach is said here, before the scenarios' array is open */
	for (int i = 0; i < nr_user; i++) {
		int err = attach(user[i], cg, ATTACH_LINK(&link));

		if (err)
			program_refused("attach", labels[i], err);
		link_destroy(link);
	}

	json_arr_open("scenarios");
	scenario("reference", cg, (int[]){ REF, END });
	scenario("reference+probe", cg, (int[]){ REF, PROBE, END });
	for (int i = 0; i < nr_user; i++) {
		const char *p = labels[i];

		snprintf(name, sizeof(name), "user:%s", p);
		scenario(name, cg, (int[]){ i, PROBE, END });
		snprintf(name, sizeof(name), "user:%s+reference", p);
		scenario(name, cg, (int[]){ i, REF, PROBE, END });
		snprintf(name, sizeof(name), "user:reference+%s", p);
		scenario(name, cg, (int[]){ REF, i, PROBE, END });
		snprintf(name, sizeof(name), "user:reference+%s+restorer", p);
		scenario(name, cg, (int[]){ REF, i, RESTORER, PROBE, END });
	}
	scenario("sk_bpf_cb_flags", cg, (int[]){ WORD_A, WORD_B, END });
	if (nr_user > 1) {
		int n = 0;

		for (; n < nr_user; n++)
			order[n] = n;
		order[n] = PROBE;
		order[n + 1] = END;
		scenario("user:all", cg, order);
	}
	json_arr_close();
	json_close();
	check_sockops__destroy(ours);
	for (int o = 0; o < nr_objs; o++)
		bpf_object__close(objs[o]);
	return 0;
}
