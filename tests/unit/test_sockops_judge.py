"""check-progs' judging of sockops programs (kregress.check_progs.sockops) on driver output shaped
as guest/check_sockops prints it: who silences whom, the op after which the flags lost the bit,
the probe's neutrality, and the later writers' answers."""
from kregress.check_progs import findings as checkprogs, sockops

REF = sockops.REFERENCE_OPTION


def scenario(name, to_server=3, to_client=3, own=None, flags=None, writers=None, seen=(3, 3)):
    """One scenario: the reference's option on that many data segments each way, the object's own
    options (option -> (to_server, to_client)), the probe's flags per side and op."""
    def side(n, which):
        opts = {REF: n} if n else {}
        for option, counts in (own or {}).items():
            opts[option] = counts[which]
        return {"data": 3, "options": opts}
    out = {"name": name, "wire": {"to_server": side(to_server, 0), "to_client": side(to_client, 1)},
           "reference": {"passive": {"seen_data": seen[0]}, "active": {"seen_data": seen[1]}},
           "probe": flags or {"passive": {"11": "0x60", "5": "0x60"}, "active": {"3": "0x60", "4": "0x60"}}}
    if writers:
        out["writers"] = writers
    return out


def doc(programs, scenarios):
    return {"programs": [{"name": p, "section": "sockops", "checked": True} for p in programs],
            "scenarios": scenarios}


def has(fact):
    return fact != "sk_bpf_cb_flags"


def test_a_program_that_clears_write_hdr_opt_silences_the_reference():
    quiet = {"passive": {"11": "0x60", "5": "0x20"}, "active": {"3": "0x60", "4": "0x60"}}
    d = doc(["prog_b"], [scenario("reference"), scenario("reference+probe"), scenario("user:prog_b"),
                         scenario("user:prog_b+reference", to_client=0, flags=quiet, seen=(3, 0)),
                         scenario("user:reference+prog_b", to_client=0, flags=quiet),
                         scenario("user:reference+prog_b+restorer", writers={"restore_passive": 0, "restore_active": 0}),
                         scenario("sk_bpf_cb_flags", writers={"word_a": -22, "word_b": -22, "word_get": -22,
                                                              "word_after": 0})])
    check = sockops.check_sockops(d, has)
    (f,) = check["findings"]
    assert f["program"] == "prog_b" and f["order"] == "user:prog_b+reference"
    assert f["lost"] == {"to_client": [3, 0], "parsed_on_active_side": [3, 0]}
    assert f["cleared"] == [{"side": "passive", "op": "PASSIVE_ESTABLISHED_CB", "before": "0x60", "after": "0x20",
                             "bits": "WRITE_HDR_OPT"}]
    assert f["explained_by"] == ["sockops_hdr_opt"] and check["probe_neutral"]
    restore = check["later_writers"]["sockops_cb_flags_setsockopt"]["restores"]["prog_b"]
    assert restore == {"setsockopt": {"passive": "OK", "active": "OK"}, "silence_ended": True}
    assert check["later_writers"]["sk_bpf_cb_flags"]["first_set"] == "EINVAL"
    assert checkprogs.status([], [], None, check["findings"]) == "findings"
    lines = sockops.render({"sockops": check, "reproduce": "r"}, "k")
    assert any("prog_b silences the reference" in line and "WRITE_HDR_OPT cleared" in line for line in lines)


def test_the_objects_own_header_option_program_going_quiet_is_named():
    a_opt = "254:0xa1a1"
    d = doc(["prog_a", "prog_b"], [
        scenario("reference"), scenario("reference+probe"),
        scenario("user:prog_a", own={a_opt: (3, 3)}), scenario("user:prog_a+reference", own={a_opt: (3, 3)}),
        scenario("user:reference+prog_a", own={a_opt: (3, 3)}),
        scenario("user:prog_b"), scenario("user:prog_b+reference", to_client=0), scenario("user:reference+prog_b", to_client=0),
        scenario("user:all", own={a_opt: (3, 0)})])
    check = sockops.check_sockops(d, has)
    victims = sorted(f["victim"] for f in check["findings"])
    assert victims == ["prog_a (its option 254:0xa1a1)", "the reference (another team's header-option program)"]


def test_nobody_silenced_and_a_probe_that_changes_things_is_said():
    d = doc(["prog_a"], [scenario("reference"), scenario("reference+probe", to_server=2), scenario("user:prog_a"),
                         scenario("user:prog_a+reference"), scenario("user:reference+prog_a")])
    check = sockops.check_sockops(d, has)
    assert check["findings"] == [] and not check["probe_neutral"]
    assert "CHANGED" in sockops.render({"sockops": check, "reproduce": "r"}, "k")[0]


def test_a_loss_no_silencer_accounts_for_is_shown_unexplained():
    a_opt = "254:0xa1a1"
    d = doc(["prog_a", "prog_c"], [
        scenario("reference"), scenario("reference+probe"),
        scenario("user:prog_a", own={a_opt: (3, 3)}), scenario("user:prog_a+reference"),
        scenario("user:reference+prog_a"), scenario("user:prog_c"), scenario("user:prog_c+reference"),
        scenario("user:reference+prog_c"), scenario("user:all", own={a_opt: (3, 1)})])
    (f,) = sockops.check_sockops(d, has)["findings"]
    assert f["victim"].startswith("prog_a") and f["explained_by"] == [] and f["lost"] == {"to_client": [3, 1]}
