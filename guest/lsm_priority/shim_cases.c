/* lsm_priority's cases on the hook's shim: programs on a parent and a child cgroup
 * seen through one shim (held by an anchor), and the shim after its last link goes. */
#include "driver.h"

#include <sched.h>


struct writer {
	int runs, seen;
};

static void reset(struct lsm_priority *skel)
{
	skel->bss->post_create_runs = 0;
	skel->data->seen_prio = -1;
}

/* One socket in the child cgroup with programs on both; each program reports the
 * priority it found, so whoever saw the other's value ran second. */
static int one_hierarchy_socket(struct lsm_priority *parent, struct lsm_priority *child,
				struct writer *p, struct writer *c)
{
	int prio;

	reset(parent);
	reset(child);
	prio = new_socket_prio(AF_INET, SOCK_STREAM, 0);
	*p = (struct writer){ parent->bss->post_create_runs, parent->data->seen_prio };
	*c = (struct writer){ child->bss->post_create_runs, child->data->seen_prio };
	return prio;
}

static void print_hierarchy(const char *key, int final, struct writer p, struct writer c)
{
	json_obj_open(key);
	json_int("final", final);
	json_int("parent_runs", p.runs);
	json_int("parent_seen", p.seen);
	json_int("child_runs", c.runs);
	json_int("child_seen", c.seen);
	json_obj_close();
}

/* Runs of a skeleton's prio_post_create for one fresh socket made now. */
static int runs_for_one_socket(struct lsm_priority *skel)
{
	reset(skel);
	new_socket_prio(AF_INET, SOCK_STREAM, 0);
	return skel->bss->post_create_runs;
}

/* All lsm_cgroup programs on one hook share one shim in the hook's trampoline. Since
 * ab5d47bd41b1 (fact bpf_link_put_deferred) the shim of a hook whose last program was
 * detached is unlinked later, by a work item; an attach meanwhile installs a second
 * shim beside it (56145d237385), and each program then runs once per shim. The anchor
 * (a program on the same hook, on a cgroup of its own) keeps the hook's shim alive for
 * the whole case. A shim left by an earlier process (the probe, a previous case) may
 * still be going: with the driver in the anchor's cgroup, the anchor runs once per
 * shim, so the case waits (bounded) until it runs once, and says how long it took. */
struct anchor {
	struct lsm_priority *skel;
	int link;
	int first_runs, sockets;	/* runs for the first socket; sockets until one run */
};

static struct anchor anchor_hook(void)
{
	struct anchor a = { .skel = load_instance(ANCHOR_PRIO, "prio_post_create", NULL) };
	char path[256];
	int cg = cgroup_create(NULL, "anchor", path, sizeof(path));
	int runs;

	cgroup_join(path);
	a.link = link_to(a.skel->progs.prio_post_create, cg);
	for (a.sockets = 1; a.sockets <= 200; a.sockets++) {
		runs = runs_for_one_socket(a.skel);
		if (a.sockets == 1)
			a.first_runs = runs;
		if (runs == 1)
			break;
		usleep(10000);	/* the old shim's work item runs when this task sleeps */
	}
	return a;
}

static void print_anchor(struct anchor a)
{
	json_obj_open("anchor");
	json_int("first_socket_runs", a.first_runs);
	json_bool("single_shim_reached", a.sockets <= 200);
	json_int("sockets_until_single_shim", a.sockets <= 200 ? a.sockets : -1);
	json_obj_close();
}

/* 6. lsm_cgroup programs on a parent and its child both run for a socket in the
 * child. Attached in both orders, to tell hierarchy order from attach order, with
 * the anchor holding the hook's shim, so the order is seen through one shim. */
void case_hierarchy(char **argv)
{
	struct anchor a = anchor_hook();
	struct lsm_priority *parent = load_instance(PARENT_PRIO, "prio_post_create", NULL);
	struct lsm_priority *child = load_instance(PRIO, "prio_post_create", NULL);
	char parent_path[256], child_path[256];
	int parent_cg = cgroup_create(NULL, "parent", parent_path, sizeof(parent_path));
	int child_cg = cgroup_create(parent_path, "child", child_path, sizeof(child_path));
	struct writer p1, c1, p2, c2;
	int pl, cl;
	int final1, final2, listed;

	cgroup_join(child_path);
	pl = link_to(parent->progs.prio_post_create, parent_cg);
	cl = link_to(child->progs.prio_post_create, child_cg);
	final1 = one_hierarchy_socket(parent, child, &p1, &c1);
	link_destroy(pl);
	link_destroy(cl);
	/* One model for every case (detach too): a destroyed link is gone when
	 * link_destroy() returns, neither listed nor run. No waiting: what the kernel
	 * still lists is reported, and the test expects 0. */
	listed = attached_count(parent_cg) + attached_count(child_cg);

	cl = link_to(child->progs.prio_post_create, child_cg);
	pl = link_to(parent->progs.prio_post_create, parent_cg);
	final2 = one_hierarchy_socket(parent, child, &p2, &c2);
	link_destroy(pl);
	link_destroy(cl);

	begin_output();
	json_int("parent_prio", PARENT_PRIO);
	json_int("child_prio", PRIO);
	print_anchor(a);
	print_hierarchy("parent_attached_first", final1, p1, c1);
	print_hierarchy("child_attached_first", final2, p2, c2);
	json_int("listed_after_destroy", listed);
	json_close();
	link_destroy(a.link);
	lsm_priority__destroy(a.skel);
	lsm_priority__destroy(child);
	lsm_priority__destroy(parent);
}

struct lifetime {
	const char *policy_set;		/* "OK" or why the policy could not be set */
	int rounds, attached_sockets, ran_once, ran_more, missed, max_runs, destroyed_ran;
};

static void count_attached(struct lifetime *t, int runs)
{
	t->attached_sockets++;
	t->ran_once += runs == 1;
	t->ran_more += runs > 1;
	t->missed += runs == 0;
	if (runs > t->max_runs)
		t->max_runs = runs;
}

/* Rounds of: attach, socket; destroy (the hook's last link), socket; attach again at
 * once, socket; destroy; sleep, so the kernel's deferred work can run before the next
 * round. Under SCHED_FIFO on one vCPU no ordinary kworker runs before this task
 * sleeps, which holds a deferred shim release (bpf_link_put_deferred) open across
 * the re-attach; under SCHED_OTHER it is whatever the scheduler does. */
static struct lifetime lifetime_rounds(struct lsm_priority *skel, int cg, int policy)
{
	struct sched_param param = { .sched_priority = policy == SCHED_FIFO ? 10 : 0 };
	struct lifetime t = { .policy_set = "OK", .rounds = LIFETIME_ROUNDS };
	int link;

	if (sched_setscheduler(0, policy, &param))
		t.policy_set = errno_name(errno);
	for (int i = 0; i < LIFETIME_ROUNDS; i++) {
		link = link_to(skel->progs.prio_post_create, cg);
		count_attached(&t, runs_for_one_socket(skel));
		link_destroy(link);
		t.destroyed_ran += runs_for_one_socket(skel) > 0;
		link = link_to(skel->progs.prio_post_create, cg);
		count_attached(&t, runs_for_one_socket(skel));
		link_destroy(link);
		usleep(50000);
	}
	param.sched_priority = 0;
	sched_setscheduler(0, SCHED_OTHER, &param);
	return t;
}

static void print_lifetime(const char *key, struct lifetime t)
{
	json_obj_open(key);
	json_str("policy_set", t.policy_set);
	json_int("rounds", t.rounds);
	json_int("attached_sockets", t.attached_sockets);
	json_int("ran_once", t.ran_once);
	json_int("ran_more_than_once", t.ran_more);
	json_int("missed", t.missed);
	json_int("max_runs", t.max_runs);
	json_int("destroyed_program_ran", t.destroyed_ran);
	json_obj_close();
}

/* 8. The hook's shim after its last link is destroyed: a destroyed program must not
 * run; a program attached again right away runs once per shim in the trampoline. */
void case_shim_lifetime(char **argv)
{
	struct lsm_priority *skel = load_instance(PRIO, "prio_post_create", NULL);
	char path[256];
	int cg = cgroup_create(NULL, "lifetime", path, sizeof(path));
	struct lifetime other, fifo;

	cgroup_join(path);
	other = lifetime_rounds(skel, cg, SCHED_OTHER);
	fifo = lifetime_rounds(skel, cg, SCHED_FIFO);

	begin_output();
	print_lifetime("sched_other", other);
	print_lifetime("sched_fifo", fifo);
	json_close();
	lsm_priority__destroy(skel);
}

