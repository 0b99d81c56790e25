#!/bin/sh
# Make the demo kernel tree for a real `git bisect run`: Debian's linux-source-6.12
# imported into git, then a dozen small commits of which one brings back the pre-relief
# EFAULT (undoes the core of 29ebbba7d461 in kernel/bpf/cgroup.c), tagged demo-regression.
#   scripts/bisect-demo-tree.sh [/usr/src/linux-source-6.12.tar.xz] [/work/ksrc]
# Keep the tree OUTSIDE this repository. See docs/bisect.md.
set -eu
TARBALL=${1:-/usr/src/linux-source-6.12.tar.xz}
DEST=${2:-/work/ksrc}
# The source package (and the build tools scripts/setup.sh installs), when missing.
if [ "$TARBALL" = /usr/src/linux-source-6.12.tar.xz ] && [ ! -f "$TARBALL" ]; then
    [ "$(id -u)" = 0 ] || { echo "need root to apt-get install linux-source-6.12" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-source-6.12
fi
mkdir -p "$DEST"
cd "$DEST"
[ -d linux-source-6.12 ] || nice -n 10 tar -xf "$TARBALL"
cd linux-source-6.12
[ ! -d .git ] || { echo "$DEST/linux-source-6.12 is already a git tree" >&2; exit 1; }
git init -q -b main .
git config user.name "kregress bisect demo"
git config user.email "kregress@localhost"
# Debian's tree ignores everything at the top level (its packaging repo layout):
# drop that block so the sources themselves are tracked.
python3 - <<'PY'
import pathlib
p = pathlib.Path(".gitignore")
s = p.read_text()
if "# Debian packaging" in s:
    start = s.index("#\n# Debian packaging")
    end = s.index("!/debian/\n") + len("!/debian/\n")
    p.write_text(s[:start] + s[end:])
PY
git add -A .
git commit -q -m "Import Debian linux-source-6.12 ($(sed -n 's/^SUBLEVEL = //p' Makefile | sed 's/^/v6.12./'))"
git tag import-6.12

edit() { # file, commit message, line appended (a comment in a compiled file, or a blank line)
    printf '%s\n' "$3" >> "$1"
    git commit -q -am "$2"
}
edit Documentation/bpf/prog_cgroup_sockopt.rst "Documentation/bpf: sockopt: mention PAGE_SIZE again" ""
edit net/core/sock.c "net: sock: note on SO_PEERGROUPS sizes" "/* SO_PEERGROUPS can return more than PAGE_SIZE bytes. */"
edit kernel/bpf/syscall.c "bpf: syscall: comment on prog attach" "/* cgroup attach goes through cgroup_bpf_prog_attach(). */"
edit net/ipv4/ip_sockglue.c "ipv4: ip_sockglue: comment on IP_TOS" "/* IP_TOS: only the first int of optval is read. */"
edit MAINTAINERS "MAINTAINERS: whitespace" ""
# The behaviour change: drop the relief for optlen > PAGE_SIZE in both hooks.
python3 - <<'PY'
import pathlib
p = pathlib.Path("kernel/bpf/cgroup.c")
s = p.read_text()
set_block = '''		if (*optlen > PAGE_SIZE && ctx.optlen >= 0) {
			pr_info_once("bpf setsockopt: ignoring program buffer with optlen=%d (max_optlen=%d)\\n",
				     ctx.optlen, max_optlen);
			ret = 0;
			goto out;
		}
'''
get_block = '''		if (orig_optlen > PAGE_SIZE && ctx.optlen >= 0) {
			pr_info_once("bpf getsockopt: ignoring program buffer with optlen=%d (max_optlen=%d)\\n",
				     ctx.optlen, max_optlen);
			ret = retval;
			goto out;
		}
'''
assert s.count(set_block) == 1 and s.count(get_block) == 1, "kernel/bpf/cgroup.c differs from 6.12's"
p.write_text(s.replace(set_block, "").replace(get_block, ""))
PY
git commit -q -am "bpf: cgroup: stop ignoring the program buffer for optlen > PAGE_SIZE

Demo regression for kregress bisect: brings back -EFAULT from
{get,set}sockopt when the user's optlen is larger than PAGE_SIZE and a
cgroup sockopt program leaves ctx->optlen alone (undoes the core of
29ebbba7d461)."
git tag demo-regression
edit kernel/bpf/cgroup.c "bpf: cgroup: comment on max_optlen" "/* max_optlen is at most PAGE_SIZE, see sockopt_alloc_buf(). */"
edit net/socket.c "net: socket: comment on __sys_getsockopt" "/* __sys_getsockopt() runs the cgroup hook after the protocol handler. */"
edit Documentation/networking/ip-sysctl.rst "Documentation: ip-sysctl: trailing note" ""
edit net/ipv6/ipv6_sockglue.c "ipv6: sockglue: comment" "/* IPV6_TCLASS mirrors IP_TOS. */"
edit kernel/bpf/verifier.c "bpf: verifier: comment" "/* end of verifier.c */"
# A branch that fixes it again, for bisecting the other way (--expect buggy, terms buggy/fixed).
git checkout -q -b refix
edit net/core/sock.c "net: sock: comment on SO_PEERCRED" "/* SO_PEERCRED is fixed size. */"
git revert --no-edit demo-regression >/dev/null
git commit -q --amend -m "Revert \"bpf: cgroup: stop ignoring the program buffer for optlen > PAGE_SIZE\"

Demo fix for kregress bisect (--expect buggy): brings the relief back."
git tag demo-fix
edit kernel/bpf/cgroup.c "bpf: cgroup: trailing comment" "/* end of cgroup.c */"
edit MAINTAINERS "MAINTAINERS: blank line" ""
git checkout -q main
git log --oneline main | cat
