# The two commands a user needs (both install what they need first, idempotently):
#   make matrix   the default kernel matrix, the scenario tests (tests/scenarios), with its report
#   make test     unit tests + scenario tests on the default matrix (what CI runs)
#   make bench    the matrix twice, then the harness overhead of the second run (wall vs floor)
#   make fleet    every kernel of FLEET (kernels-fleet.toml: Debian's suites x flavors x arches), each
#                 booted once, only the cases that judge every fact; the verdict grid (docs/run.md)
# Narrow either with PYTEST_ARGS, e.g. make test PYTEST_ARGS="--kernel debian-6.12".
PYTEST_ARGS ?=
FLEET ?= kernels-fleet.toml
FLEET_ARGS ?=
# ARCHES=all: the default matrix and kernels.toml's group "arches" (the emulated ppc64le and
# s390x kernels), e.g. make matrix ARCHES=all
ARCHES ?=
ifeq ($(ARCHES),all)
override PYTEST_ARGS += $(shell python3 -c 'import tomllib; ks = tomllib.load(open("kernels.toml", "rb"))["kernel"]; print(" ".join("--kernel " + k["id"] for k in ks if k.get("default", True) or k.get("group") == "arches"))')
else ifneq ($(ARCHES),)
$(error ARCHES=$(ARCHES): the one group is ARCHES=all)
endif
JOBS ?= auto
RUN_DIR ?= runs/$(shell date -u +%Y%m%dT%H%M%SZ)-make
PYTEST = .venv/bin/pytest -n $(JOBS) --dist loadgroup -p no:cacheprovider --run-dir $(RUN_DIR)

.PHONY: setup kernels test matrix unit host-test bench fleet
setup:
	scripts/setup.sh

kernels: setup   # the kernels, the guest image and the build root, into the cache
	.venv/bin/kregress fetch -- $(PYTEST_ARGS)

unit: setup
	.venv/bin/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

test: kernels
	$(PYTEST) tests $(PYTEST_ARGS)
	.venv/bin/kregress check-results $(RUN_DIR)/results.json

matrix: kernels
	$(PYTEST) tests/scenarios $(PYTEST_ARGS)
	.venv/bin/kregress check-results $(RUN_DIR)/results.json

# The fleet fetches its kernels itself, overlapping the boots; FLEET_ARGS e.g. "--leave
# lsm_cgroup_shim_not_revived" or "--kernel ID". Figures: scripts/benchmark.py --fleet RUN_DIR.
fleet: setup
	.venv/bin/kregress fleet $(FLEET) --run-dir $(RUN_DIR) --jobs $(JOBS) $(FLEET_ARGS)
	.venv/bin/kregress check-results $(RUN_DIR)/results.json

# Issue 24's harness overhead: the matrix twice, then the second run's (every kernel restored)
# VM-test wall against its floor (guest seconds / workers) and the gap's parts. A red matrix
# still prints its measure (its outcomes with it).
bench: kernels
	-$(MAKE) --no-print-directory matrix RUN_DIR=$(RUN_DIR)-first
	-$(MAKE) --no-print-directory matrix RUN_DIR=$(RUN_DIR)
	.venv/bin/python scripts/benchmark.py --overhead $(RUN_DIR)/results.json

# The README's commands on a fresh Debian 13 host (an mmdebstrap chroot; as root, slow:
# see docs/setup.md), drivers compared byte for byte with this host's.
host-test: setup
	KREGRESS_SLOW=1 .venv/bin/pytest -p no:cacheprovider -s --run-dir $(RUN_DIR) tests/harness/test_debian13_host.py
