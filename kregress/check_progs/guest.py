"""The user's programs into a booted guest: compiled (a .bpf.c, with the project's BPF
flags), their maps configuration encoded, the netfilter modules the battery's table dumps
need loaded, and guest/check_progs run on them. Judging what it saw is kregress.check_progs.findings.
"""
from __future__ import annotations

import json
from pathlib import Path

from kregress.provision import programs as build

DRIVER = "check_progs"            # cgroup sockopt programs against the battery
# the other kinds: the part of the record each fills, its driver
KIND_DRIVERS = {"policy": "check_policy",     # socket-policy programs against sockets of every kind
                "sockops": "check_sockops"}   # sockops programs beside each other and a reference
# IPT_SO_GET_* and IP6T_SO_GET_* answer only with these; Debian builds them as modules
NETFILTER_MODULES = ["iptable_filter", "ip6table_filter"]
GUEST_DIR = "/tmp/kregress/progs"


class ProgramInputError(ValueError):
    """A program or maps file the user gave cannot be used; the message says how to fix it."""


def compile_object(path: Path, arch: str = "x86_64") -> Path:
    """A .bpf.o as is; a .bpf.c compiled with the project's toolchain, in the build root
    (cached by content)."""
    path = Path(path)
    if not path.is_file():
        raise ProgramInputError(f"{path}: no such file (give a compiled OBJECT.bpf.o or a OBJECT.bpf.c)")
    if path.suffix == ".o":
        return path
    if not path.name.endswith(".bpf.c"):
        raise ProgramInputError(f"{path}: expected OBJECT.bpf.o or OBJECT.bpf.c")
    return build.bpf_object(path, arch)


def encode_maps(path: Path | None) -> str:
    """--maps JSON ({"map": {"key": value, ...}} or {"map": [[key, value], ...]}) as the
    driver's lines "MAP KEY VALUE". Keys and values: integers, or "0x" + hex bytes."""
    if path is None:
        return ""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ProgramInputError(f"--maps {path}: {err}") from None
    if not isinstance(doc, dict):
        raise ProgramInputError(f"--maps {path}: expected an object of map name -> key/value pairs")
    lines = []
    for name, pairs in doc.items():
        items = pairs.items() if isinstance(pairs, dict) else pairs
        try:
            for key, value in items:
                lines.append(f"{name} {_token(key)} {_token(value)}")
        except (TypeError, ValueError) as err:
            raise ProgramInputError(f"--maps {path}: map {name!r}: {err}; give {{\"key\": value}} or "
                                    f"[[key, value]] with integers or \"0x<hex bytes>\"") from None
    return "".join(line + "\n" for line in lines)


def _token(value) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.startswith("0x"):
        bytes.fromhex(value[2:])        # ValueError names the bad text
        return value
    if isinstance(value, str) and value.isdigit():
        return value
    raise ValueError(f"{value!r} is neither an integer nor \"0x<hex bytes>\"")


def load_netfilter_modules(session) -> dict:
    """The kernel's own x_tables/ip_tables/ip6_tables/iptable_filter/ip6table_filter, loaded
    (KernelSession.load_modules); a kernel without them is an observation."""
    return session.load_modules(NETFILTER_MODULES)


def push_maps(session, name: str, maps_text: str, shared: bool = False) -> str:
    """The --maps lines into the guest, and the drivers' MAPS_FILE argument for them ("-": none;
    "shared:": one file for several objects, each taking the maps it has)."""
    if not maps_text:
        return "-"
    remote = f"{GUEST_DIR}/{name}.maps"
    session.vm.connection.put_bytes(maps_text.encode(), remote)
    return ("shared:" if shared else "") + remote


def run_check(session, program: Path, maps_remote: str = "-", timeout: float = 120) -> dict:
    """check_progs on one object in the session's guest: its JSON, plus the modules' state."""
    modules = load_netfilter_modules(session)
    remote = f"{GUEST_DIR}/{program.name}"
    session.vm.connection.put(program, remote, mode=0o644)
    doc = driver_json(session, DRIVER, program, remote, maps_remote, timeout=timeout)
    doc["netfilter_modules"] = modules
    return doc


def driver_json(session, driver: str, program: Path, *args, timeout: float = 120) -> dict:
    """One driver on the pushed object: its JSON; a driver that could not set up raises."""
    result = session.run_driver(driver, *args, timeout=timeout)
    doc = result.json()
    if result.rc != 0 or "error" in doc:
        raise RuntimeError(f"{driver} {program.name} failed (exit {result.rc}): {doc.get('error', '')}\n"
                           f"{result.stderr[-2000:]}")
    return doc


def lsm_cgroup_here(kernel_facts) -> tuple[bool, str]:
    """Whether to load lsm_cgroup programs on this kernel, and, if not, why (its facts)."""
    from kregress.kernels.facts import FACTS
    state = kernel_facts.state("lsm_cgroup")
    if state == "has":
        return True, ""
    if state == "unusable":
        return False, f"lsm_cgroup is unusable on this kernel: {kernel_facts.unusable_reason('lsm_cgroup')}"
    return False, f"this kernel lacks lsm_cgroup ({FACTS['lsm_cgroup'].label}): not supported"


def check_object(session, source: Path, has, owns: list[str] = (), maps: Path | None = None,
                 kernels_file: Path | None = None, lsm_cgroup: tuple[bool, str] = (True, ""),
                 maps_shared: bool = False, hdr_opt: bool = True) -> dict:
    """One object on one kernel: the record a test keeps (extras["check_progs"]) and
    `kregress check-progs` prints. has(fact name) -> bool: the kernel's facts; lsm_cgroup:
    whether to load lsm_cgroup programs here, and why not (lsm_cgroup_here); maps_shared: the
    --maps file was given for several objects, so this one takes only the maps it has; hdr_opt:
    whether the kernel has header-option callbacks (sockops_hdr_opt), which our reference needs.

    Each kind's driver checks its own programs (check_progs: sockopt; KIND_DRIVERS: the others);
    a program no driver checked is "not checked", with why; a refusal stops the drivers after it,
    and the programs it stopped say so, while what ran before it keeps its results."""
    from kregress.check_progs import findings as checkprogs, policy, sockops
    owned = checkprogs.parse_owns(list(owns))
    obj = compile_object(source, session.kernel.spec.arch)
    maps_remote = push_maps(session, obj.name, encode_maps(maps), maps_shared)
    docs = {"sockopt": run_check(session, obj, maps_remote)}
    remote = f"{GUEST_DIR}/{obj.name}"
    kind_args = {"policy": [remote, maps_remote] + ([] if lsm_cgroup[0] else ["lsm_cgroup=no"]),
                 "sockops": ([] if hdr_opt else ["reference=no"]) + [maps_remote, remote]}
    skipped_why = {"lsm_cgroup": lsm_cgroup[1],
                   "sockops_hdr_opt": f"this kernel lacks header-option callbacks ({sockops.FACT}), which "
                                      f"check-progs' reference sockops program needs"}
    for kind, driver in KIND_DRIVERS.items():
        if any(d.get("refused") for d in docs.values()):
            break
        docs[kind] = driver_json(session, driver, obj, *kind_args[kind])
    kernel_id = session.kernel.id
    refused_kind = next((kind for kind, d in docs.items() if d.get("refused")), None)
    record = {"object": str(source), "kernel": kernel_id, "page_size": docs["sockopt"].get("page_size"),
              "release": docs["sockopt"].get("release"), "libbpf": docs["sockopt"].get("libbpf"),
              "setup": docs["sockopt"].get("setup"), "netfilter_modules": docs["sockopt"].get("netfilter_modules"),
              "not_checked": _not_checked(docs, refused_kind, skipped_why),
              "reproduce": checkprogs.reproducer(kernel_id, str(source), list(owns), maps and str(maps),
                                                 kernels_file and str(kernels_file)),
              "programs": []}
    checks, policy_check = [], None
    if refused_kind != "sockopt":
        checks = [checkprogs.check_program(docs["sockopt"], run, kernel_id, has, owned)
                  for run in docs["sockopt"]["runs"]]
        record["programs"] = [c.as_record() for c in checks]
        record["calls"] = len(docs["sockopt"]["calls"])
    if _ran(docs.get("policy")):
        policy_check = policy.check_policy(docs["policy"], kernel_id, has)
        record["policy"] = policy_check.as_record()
    if _ran(docs.get("sockops")):
        record["sockops"] = sockops.check_sockops(docs["sockops"], has)
    if refused_kind:
        record.update(status="could not check", refused=docs[refused_kind]["refused"], refused_by=refused_kind)
    else:
        record["status"] = checkprogs.status(checks, record["not_checked"], policy_check,
                                             (record.get("sockops") or {}).get("findings"))
    record["raw"] = docs    # every call's answers, for the fixture tests and for a reader who doubts a finding
    return record


def _ran(doc: dict | None) -> bool:
    """A kind's driver checked programs and was not refused."""
    return bool(doc) and not doc.get("refused") and any(p["checked"] for p in doc.get("programs", []))


def _not_checked(docs: dict, refused_kind: str | None, skipped_why: dict) -> list[dict]:
    """The object's programs (check_progs lists them all) that no driver checked, each with why:
    not this kind of program yet, not loaded here (the facts), or stopped by the kernel's refusal."""
    from kregress.check_progs import findings as checkprogs
    claimed, skipped = {}, {}
    for kind, doc in docs.items():
        for program in doc.get("programs", []):
            if program["checked"]:
                claimed.setdefault(program["name"], kind)
            elif program.get("skipped"):
                skipped[program["name"]] = skipped_why.get(program["skipped"], program["skipped"])
    refused = checkprogs.refused_program(docs[refused_kind]["refused"]) if refused_kind else ""
    out = []
    for program in docs["sockopt"].get("programs", []):
        kind = claimed.get(program["name"])
        if kind and kind != refused_kind:
            continue
        if kind:
            why = "the kernel refused it (above)" if program["name"] == refused else \
                f"not run: the kernel refused {refused or 'the object'}, so the {kind} check did not run"
        elif refused_kind == "sockopt" and program["checked"] is False and not skipped:
            why = f"not run: the kernel refused {refused or 'the object'} before any check ran"
        else:
            why = skipped.get(program["name"]) or checkprogs.NOT_CHECKED_WHY
        out.append({"program": program["name"], "section": program["section"], "why": why})
    return out


def check_together(session, sources: list[Path], has, maps: Path | None = None,
                   kernels_file: Path | None = None) -> dict:
    """Several objects' sockops programs on one cgroup, as several teams' programs run on one host:
    which silences which across objects. Each object's own check is check_object's; this record
    holds only the "sockops" part (None: fewer than two objects have sockops programs)."""
    from kregress.check_progs import findings as checkprogs, sockops
    stems = [Path(source).name.split(".")[0] for source in sources]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:       # programs are named OBJECT/PROGRAM, and objects are pushed by name
        raise ProgramInputError(f"two objects named {', '.join(twice)}: rename one so that each object's programs "
                                f"can be told apart")
    objs = [compile_object(source, session.kernel.spec.arch) for source in sources]
    remotes = [f"{GUEST_DIR}/{obj.name}" for obj in objs]
    for obj, remote in zip(objs, remotes):
        session.vm.connection.put(obj, remote, mode=0o644)
    maps_remote = push_maps(session, "together", encode_maps(maps))
    doc = driver_json(session, KIND_DRIVERS["sockops"], objs[0], maps_remote, *remotes)
    kernel_id = session.kernel.id
    record = {"object": " + ".join(str(source) for source in sources), "kernel": kernel_id,
              "release": doc.get("release"), "not_checked": [], "programs": [],
              "reproduce": checkprogs.reproducer(kernel_id, [str(s) for s in sources], (),
                                                 maps and str(maps), kernels_file and str(kernels_file))}
    if doc.get("refused"):
        return {**record, "status": "could not check", "refused": doc["refused"]}
    owners = {p["label"].split("/")[0] for p in doc.get("programs", []) if p["checked"]}
    if len(owners) < 2:
        return {**record, "status": "nothing together", "sockops": None}
    record["sockops"] = sockops.check_sockops(doc, has)
    record["status"] = checkprogs.status([], [], None, record["sockops"]["findings"])
    return record
