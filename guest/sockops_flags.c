/* sockops_flags: do two sockops programs on one socket clobber each other's cb flags?
 *
 * Usage: sockops_flags CASE [ARG]
 *   prog_a_alone
 *   prog_a_and_b        a_first|b_first     (attach order in one cgroup)
 *   storage_workaround  a_first|b_first     (prog_a_storage + prog_b_storage)
 *   nested_cgroups      a_on_parent|b_on_parent   (the other prog on the child cgroup)
 *
 * In a network namespace of its own, it connects over loopback, snapshots the BPF
 * counters once the handshake is done, exchanges DATA_SEGMENTS segments each way
 * (ping-pong, so each send is exactly one segment), waits until everything is ACKed
 * and reports what changed: per socket role (passive = accept()ed, active =
 * connect()ing), each program's callbacks, the options the peer found, and the cb
 * flags each program read.
 */
#include "common.h"
#include "lib/attach.h"
#include "lib/cgroup.h"
#include "lib/net.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../progs/sockops_flags.h"
#include "sockops_flags.skel.h"

#define SERVER_PORT	4242
#define DATA_SEGMENTS	6
#define SEGMENT_BYTES	100
typedef struct sockops_counts counts_t[NR_PROGS][NR_ROLES];

static struct sockops_flags *skel;

static void attach_multi(struct bpf_program *prog, int cgroup_fd, const char *cgroup)
{
	int err = attach(prog, cgroup_fd, ATTACH_FLAGS(BPF_F_ALLOW_MULTI));

	if (err)
		refused("attach", bpf_program__name(prog), err, cgroup);
}

static __u32 prog_id(struct bpf_program *prog)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		fail("prog info for %s", bpf_program__name(prog));
	return info.id;
}

/* The order the kernel will run them in: the effective array of the socket's cgroup. */
static void effective_order(int cgroup_fd, char *out, size_t len)
{
	struct bpf_program *progs[] = { skel->progs.prog_a, skel->progs.prog_b,
					skel->progs.prog_a_storage, skel->progs.prog_b_storage };
	__u32 ids[8], cnt = 8, attach_flags = 0;

	if (bpf_prog_query(cgroup_fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE, &attach_flags, ids, &cnt))
		fail("BPF_PROG_QUERY");
	out[0] = 0;
	for (__u32 i = 0; i < cnt; i++) {
		const char *name = "foreign";

		for (size_t p = 0; p < sizeof(progs) / sizeof(progs[0]); p++)
			if (prog_id(progs[p]) == ids[i])
				name = bpf_program__name(progs[p]);
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", name);
	}
}

/* Wait until the peer has ACKed everything this socket sent: only then have the
 * peer's PARSE callbacks for our data and our PARSE callback for its ACK all run.
 */
static void wait_acked(int fd, const char *who)
{
	struct timespec start, now;
	int outq;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (ioctl(fd, SIOCOUTQ, &outq))
			fail("SIOCOUTQ");
		if (outq == 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 5)
			fail("%s: %d bytes still unacked after 5 s", who, outq);
		usleep(1000);
	}
}

static long long retransmits(int fd)
{
	struct tcp_info info = {};
	socklen_t len = sizeof(info);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len))
		fail("TCP_INFO");
	return info.tcpi_total_retrans;
}

/* Handshake, snapshot, data both ways, snapshot. */
static long long run_traffic(counts_t handshake, counts_t end)
{
	char buf[SEGMENT_BYTES];
	int lfd, cfd, afd;
	long long retrans;

	lfd = tcp_listener(SERVER_PORT, NULL);
	cfd = tcp_connect(SERVER_PORT);
	/* accept() returns once the passive side has processed the final ACK, so both
	 * *_ESTABLISHED_CB have run and nothing else is in flight.
	 */
	afd = tcp_accept(lfd);
	tcp_nodelay(cfd);
	tcp_nodelay(afd);

	memcpy(handshake, skel->bss->counts, sizeof(counts_t));
	for (int p = 0; p < NR_PROGS; p++)
		for (int r = 0; r < NR_ROLES; r++)
			skel->bss->counts[p][r].last_flags = NO_FLAGS_READ;

	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < DATA_SEGMENTS; i++) {
		send_all(cfd, buf, sizeof(buf));
		recv_all(afd, buf, sizeof(buf));
		send_all(afd, buf, sizeof(buf));	/* from the accepted socket */
		recv_all(cfd, buf, sizeof(buf));
	}
	wait_acked(cfd, "active socket");
	wait_acked(afd, "passive socket");
	memcpy(end, skel->bss->counts, sizeof(counts_t));

	retrans = retransmits(cfd) + retransmits(afd);
	close(afd);
	close(cfd);
	close(lfd);
	return retrans;
}

static void json_flags(const char *key, __u32 flags)
{
	json_int(key, flags == NO_FLAGS_READ ? -1 : (long long)flags);
}

/* One program's view of one socket role: flags at establishment (from the handshake
 * snapshot), then what happened during the data exchange.
 */
static void json_prog(const char *prog, const struct sockops_counts *hs, const struct sockops_counts *end)
{
	char key[128];

#define KEY(suffix) (snprintf(key, sizeof(key), "%s_%s", prog, suffix), key)
#define DELTA(field) ((long long)(end->field - hs->field))
	json_flags(KEY("flags_at_established"), hs->flags_at_established);
	json_flags(KEY("flags_after_established"), hs->flags_after_established);
	json_flags(KEY("flags_read_after_established"), end->last_flags);
	json_int(KEY("rejected_flags"), hs->rejected_flags);
	json_int(KEY("options_written_in_handshake"), hs->written);
	json_int(KEY("hdr_opt_len_after_established"), DELTA(hdr_opt_len));
	json_int(KEY("hdr_opt_len_mss_after_established"), DELTA(hdr_opt_len_mss));
	json_int(KEY("write_hdr_opt_after_established"), DELTA(write_hdr_opt));
	json_int(KEY("options_written_after_established"), DELTA(written));
	json_int(KEY("options_written_on_data_after_established"), DELTA(written_data));
	json_int(KEY("parse_hdr_opt_after_established"), DELTA(parse_hdr_opt));
	json_int(KEY("skipped_by_storage_bool_after_established"), DELTA(skipped));
#undef DELTA
#undef KEY
}

/* What the peer's prog_a (the observer) found of this side's options. */
static void json_seen_by_peer(const char *peer, const struct sockops_counts *hs, const struct sockops_counts *end,
			      const char *handshake_packet)
{
	char key[128];

#define KEY(fmt) (snprintf(key, sizeof(key), fmt, peer), key)
	json_int(KEY("option_a_seen_by_%s_peer_on_data"), (long long)(end->seen_a_data - hs->seen_a_data));
	json_int(KEY("option_b_seen_by_%s_peer_on_data"), (long long)(end->seen_b_data - hs->seen_b_data));
	json_int(KEY("option_a_seen_by_%s_peer_after_established"), (long long)(end->seen_a - hs->seen_a));
	snprintf(key, sizeof(key), "option_a_seen_by_%s_peer_in_%s", peer, handshake_packet);
	json_int(key, hs->seen_a_handshake);
	snprintf(key, sizeof(key), "option_b_seen_by_%s_peer_in_%s", peer, handshake_packet);
	json_int(key, hs->seen_b_handshake);
#undef KEY
}

/* argv: CASE [VARIANT] */
static void observe(char **argv)
{
	const char *name = argv[0], *arg = argv[1] ? argv[1] : "";
	struct bpf_program *a, *b, *parent_prog = NULL, *child_prog = NULL;
	char path[256], parent_path[256], order[128];
	counts_t hs, end;
	int cg_fd, parent_fd;
	long long retrans;

	enter_private_netns();

	skel = sockops_flags__open();
	if (!skel)
		fail("opening the BPF object");
	skel->rodata->server_port = SERVER_PORT;
	if (sockops_flags__load(skel))
		refused("load", "sockops_flags.bpf.o", errno, "see stderr for the verifier log");
	for (int p = 0; p < NR_PROGS; p++)
		for (int r = 0; r < NR_ROLES; r++) {
			struct sockops_counts *c = &skel->bss->counts[p][r];

			c->flags_at_established = c->flags_after_established = NO_FLAGS_READ;
			c->last_flags = NO_FLAGS_READ;
		}

	a = skel->progs.prog_a;
	b = skel->progs.prog_b;
	if (!strcmp(name, "storage_workaround")) {
		a = skel->progs.prog_a_storage;
		b = skel->progs.prog_b_storage;
	}

	if (!strcmp(name, "nested_cgroups")) {
		/* The flags live on the socket, so where in the hierarchy each prog sits
		 * should not matter; the effective array runs the child's progs first.
		 */
		parent_fd = cgroup_create(NULL, "parent", parent_path, sizeof(parent_path));
		cg_fd = cgroup_create(parent_path, "child", path, sizeof(path));
		parent_prog = !strcmp(arg, "a_on_parent") ? a : b;
		child_prog = parent_prog == a ? b : a;
		attach_multi(parent_prog, parent_fd, parent_path);
		attach_multi(child_prog, cg_fd, path);
	} else {
		cg_fd = cgroup_create(NULL, "sockops", path, sizeof(path));
		if (!strcmp(name, "prog_a_alone")) {
			attach_multi(a, cg_fd, path);
		} else {
			attach_multi(!strcmp(arg, "a_first") ? a : b, cg_fd, path);
			attach_multi(!strcmp(arg, "a_first") ? b : a, cg_fd, path);
		}
	}
	effective_order(cg_fd, order, sizeof(order));
	cgroup_join(path);

	retrans = run_traffic(hs, end);

	json_open();
	json_str("case", name);
	json_str("variant", arg);
	json_str("run_order", order);		/* effective array of the sockets' cgroup */
	if (parent_prog) {
		json_str("parent_cgroup_prog", bpf_program__name(parent_prog));
		json_str("child_cgroup_prog", bpf_program__name(child_prog));
	}
	json_int("data_segments_each_way", DATA_SEGMENTS);
	json_int("retransmits", retrans);
	json_int("write_hdr_opt_flag", BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
	json_int("parse_all_hdr_opt_flag", BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);

	/* The accept()ed socket (flags at establishment: PASSIVE_ESTABLISHED_CB), and
	 * what the active peer found of its options (handshake packet: the SYN-ACK).
	 */
	json_obj_open("passive");
	json_prog("prog_a", &hs[PROG_A][PASSIVE], &end[PROG_A][PASSIVE]);
	json_prog("prog_b", &hs[PROG_B][PASSIVE], &end[PROG_B][PASSIVE]);
	json_seen_by_peer("active", &hs[PROG_A][ACTIVE], &end[PROG_A][ACTIVE], "synack");
	json_obj_close();

	/* The connect()ing socket (ACTIVE_ESTABLISHED_CB), and what the passive peer found
	 * of its options (handshake packet: the final ACK).
	 */
	json_obj_open("active");
	json_prog("prog_a", &hs[PROG_A][ACTIVE], &end[PROG_A][ACTIVE]);
	json_prog("prog_b", &hs[PROG_B][ACTIVE], &end[PROG_B][ACTIVE]);
	json_seen_by_peer("passive", &hs[PROG_A][PASSIVE], &end[PROG_A][PASSIVE], "final_ack");
	json_obj_close();
	json_close();

	sockops_flags__destroy(skel);
}

static const struct driver_case cases[] = {
	{ "prog_a_alone", {}, observe },
	{ "prog_a_and_b", { "a_first|b_first" }, observe },	/* attach order in one cgroup */
	{ "storage_workaround", { "a_first|b_first" }, observe },	/* prog_a_storage + prog_b_storage */
	{ "nested_cgroups", { "a_on_parent|b_on_parent" }, observe },	/* the other on the child cgroup */
};

int main(int argc, char **argv)
{
	pick_case("sockops_flags", cases, NR_CASES(cases), argc, argv)->run(argv + 1);
	return 0;
}
