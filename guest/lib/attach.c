/* attach.h's one attach(): the bpf() syscall with a hand-laid attribute, so the mprog
 * fields (relative_fd), which the build root's uapi headers and libbpf predate, are there
 * too. A kernel without them refuses the flag or the field: that refusal is its errno. */
#include "attach.h"

#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

/* BPF_PROG_ATTACH / BPF_PROG_DETACH */
struct prog_attach_attr {
	__u32 target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd, relative_fd;
	__u64 expected_revision;
};

static int bpf_errno(int cmd, void *attr, unsigned int size)
{
	long ret = syscall(__NR_bpf, cmd, attr, size);

	return ret < 0 ? -errno : (int)ret;
}

int attach(struct bpf_program *prog, int target_fd, struct attach_how how)
{
	enum bpf_attach_type type = bpf_program__expected_attach_type(prog);
	int ret;

	if (how.link_fd) {
		union bpf_attr attr = {
			.link_create = { .prog_fd = bpf_program__fd(prog), .target_fd = target_fd, .attach_type = type },
		};

		ret = bpf_errno(BPF_LINK_CREATE, &attr, sizeof(attr));
		*how.link_fd = ret < 0 ? -1 : ret;
	} else {
		struct prog_attach_attr attr = {
			.target_fd = target_fd, .attach_bpf_fd = bpf_program__fd(prog), .attach_type = type,
			.attach_flags = how.flags, .relative_fd = how.before ? bpf_program__fd(how.before) : 0,
		};

		ret = bpf_errno(BPF_PROG_ATTACH, &attr, sizeof(attr));
	}
	return ret < 0 ? -ret : 0;
}

int detach(struct bpf_program *prog, int target_fd)
{
	struct prog_attach_attr attr = {
		.target_fd = target_fd, .attach_bpf_fd = bpf_program__fd(prog),
		.attach_type = bpf_program__expected_attach_type(prog),
	};
	int ret = bpf_errno(BPF_PROG_DETACH, &attr, sizeof(attr));

	return ret < 0 ? -ret : 0;
}

void link_destroy(int link_fd)
{
	if (link_fd >= 0)
		close(link_fd);
}
