"""The check-progs wing: a user's own BPF programs against each kernel's answers.

guest (compile, push, run the drivers: guest/check_progs, check_policy, check_sockops), findings
(what a sockopt program changes, the object's status and words), policy (which sockets a policy
reaches), sockops (which sockops program silences which), helpers (helper ids by name),
sockopt_model (what the sockopt hook hands the caller, from the facts), report (report.html's
"Your programs"), options (its pytest options).
"""
