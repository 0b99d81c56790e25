/* net_policy's shared parts (driver.h): skeleton instances, the policy in cgroup storage,
 * loopback addresses, CAP_NET_BIND_SERVICE, the output header. */
#include "driver.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <sys/syscall.h>

const char *case_name;

struct load_result {
	struct net_policy *skel;	/* NULL: the kernel refused the load */
	int err;			/* the kernel's errno then */
	char verifier[200];		/* the verifier's reason (the log's last words) */
};

static struct load_result load_list(__u32 rewrite_ret, const char *first, va_list ap)
{
	struct load_result loaded = { .skel = net_policy__open() };
	struct bpf_program *prog;
	const char *name;

	if (!loaded.skel)
		fail("opening the net_policy skeleton");
	loaded.skel->rodata->rewrite_ret = rewrite_ret;
	loaded.skel->rodata->page_size = sysconf(_SC_PAGESIZE);
	bpf_object__for_each_program(prog, loaded.skel->obj)
		bpf_program__set_autoload(prog, false);
	for (name = first; name; name = va_arg(ap, const char *)) {
		prog = bpf_object__find_program_by_name(loaded.skel->obj, name);
		if (!prog)
			fail("no program %s in net_policy.bpf.c", name);
		bpf_program__set_autoload(prog, true);
	}
	libbpf_log_reset();
	if (net_policy__load(loaded.skel)) {
		loaded.err = errno;
		verifier_verdict(loaded.verifier, sizeof(loaded.verifier));
		net_policy__destroy(loaded.skel);
		loaded.skel = NULL;
	}
	return loaded;
}

struct net_policy *load_or_report(__u32 rewrite_ret, const char *first, ...)
{
	struct load_result loaded;
	va_list ap;

	va_start(ap, first);
	loaded = load_list(rewrite_ret, first, ap);
	va_end(ap);
	if (!loaded.skel) {
		begin_output();
		json_bool("loaded", 0);
		json_str("load_errno", errno_name(loaded.err));
		json_str("verifier", loaded.verifier);
		json_close();
	}
	return loaded.skel;
}

struct net_policy *must_load(const char *first, ...)
{
	struct load_result loaded;
	va_list ap;

	va_start(ap, first);
	loaded = load_list(1, first, ap);
	va_end(ap);
	if (!loaded.skel)
		refused("load", case_name, loaded.err, loaded.verifier);
	return loaded.skel;
}

void attach_to(struct bpf_program *prog, int cgroup_fd)
{
	int err = attach(prog, cgroup_fd, ATTACH_FLAGS(BPF_F_ALLOW_MULTI));

	if (err)
		refused("attach", bpf_program__name(prog), err, "");
}

/* ---- the policy: one storage per cgroup (key: its id), written by the manager ---- */
void write_policy(struct net_policy *skel, const char *cgroup, const struct container_policy *pol)
{
	__u64 id = cgroup_id_of(cgroup);

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.policy), &id, pol, 0))
		fail("writing the policy of %s", cgroup);
}

void read_policy(struct net_policy *skel, const char *cgroup, struct container_policy *pol)
{
	__u64 id = cgroup_id_of(cgroup);

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.policy), &id, pol))
		fail("reading the policy of %s", cgroup);
}

struct container_policy default_policy(void)
{
	struct container_policy pol = { .port_lo = PORT_LO, .port_hi = PORT_HI };

	pol.tos_allowed[0] = 1;		/* the default TOS */
	pol.tos_allowed[TOS_ALLOWED] = 1;
	return pol;
}

/* ---- addresses and binds ---- */
socklen_t loopback(int family, unsigned short port, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		return sizeof(*a);
	}
	((struct sockaddr_in *)out)->sin_family = AF_INET;
	((struct sockaddr_in *)out)->sin_port = htons(port);
	((struct sockaddr_in *)out)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(struct sockaddr_in);
}

unsigned short local_port(int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);

	if (getsockname(fd, (struct sockaddr *)&addr, &len))
		fail("getsockname");
	return ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port :
		     ((struct sockaddr_in *)&addr)->sin_port);
}

const char *bind_port(int family, int type, unsigned short port, int *fd_out)
{
	struct sockaddr_storage addr;
	socklen_t len = loopback(family, port, &addr);
	int fd = must_socket(family, type, 0);

	if (bind(fd, (struct sockaddr *)&addr, len)) {
		int err = errno;

		close(fd);
		*fd_out = -1;
		return errno_name(err);
	}
	*fd_out = fd;
	return "OK";
}

/* CAP_NET_BIND_SERVICE in the effective set only: the permitted set keeps it, so it can
 * be raised again. */
void set_bind_service(int on)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	__u32 bit = 1U << CAP_NET_BIND_SERVICE;

	if (syscall(SYS_capget, &header, data))
		fail("capget");
	data[0].effective = on ? data[0].effective | bit : data[0].effective & ~bit;
	if (syscall(SYS_capset, &header, data))
		fail("capset (CAP_NET_BIND_SERVICE %s)", on ? "on" : "off");
}

/* Per network namespace: what autobind and connect() pick from. */
void set_local_port_range(int lo, int hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "w");

	if (!f || fprintf(f, "%d %d\n", lo, hi) < 0 || fclose(f))
		fail("setting ip_local_port_range");
}

const char *family_name(int family)
{
	return family == AF_INET6 ? "v6" : "v4";
}

void begin_output(void)
{
	json_open();
	json_str("case", case_name);
}
