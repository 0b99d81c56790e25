/* One way for every driver to put a BPF program on its target and take it off again.
 *
 * attach() is the bpf() syscall itself: it returns 0 or the kernel's own errno (positive),
 * with nothing between them that retries, falls back or renames an error. Styles:
 *   BPF_PROG_ATTACH with flags          attach(prog, cg, ATTACH_FLAGS(BPF_F_ALLOW_MULTI))
 *   ... placed before another program   attach(prog, cg, ATTACH_BEFORE(anchor))   (mprog API)
 *   a link (BPF_LINK_CREATE)            attach(prog, cg, ATTACH_LINK(&link_fd))
 *   a link to the program's hook (LSM)  attach(prog, NO_TARGET, ATTACH_LINK(&link_fd))
 * The attach type is always the program's own (from its SEC() name).
 */
#ifndef KREGRESS_ATTACH_H
#define KREGRESS_ATTACH_H

#include <bpf/libbpf.h>

/* uapi flags newer than the build root's headers */
#define ATTACH_F_BEFORE (1U << 3)
#define ATTACH_F_PREORDER (1U << 6)

#define NO_TARGET 0	/* a link's target for programs that attach to their hook (BPF LSM) */

struct attach_how {
	__u32 flags;			/* BPF_PROG_ATTACH flags */
	struct bpf_program *before;	/* BPF_PROG_ATTACH placed BPF_F_BEFORE this program */
	int *link_fd;			/* a link instead; its fd goes here (-1 when refused) */
};

#define ATTACH_FLAGS(f) ((struct attach_how){ .flags = (f) })
#define ATTACH_BEFORE(anchor) ((struct attach_how){ .flags = BPF_F_ALLOW_MULTI | ATTACH_F_BEFORE, .before = (anchor) })
#define ATTACH_LINK(fd_out) ((struct attach_how){ .link_fd = (fd_out) })

int attach(struct bpf_program *prog, int target_fd, struct attach_how how);
/* BPF_PROG_DETACH of one program attached with BPF_PROG_ATTACH; 0 or the kernel's errno. */
int detach(struct bpf_program *prog, int target_fd);
/* A link goes when its last fd is closed (as bpf_link__destroy() does); -1 is no link. */
void link_destroy(int link_fd);

#endif
