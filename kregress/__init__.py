"""Host-side harness: boot kernels with virtme-ng and run cgroup-BPF scenarios in them."""
