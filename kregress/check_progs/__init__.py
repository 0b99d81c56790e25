"""The check-progs wing: a user's own BPF programs against each kernel's answers.

guest (compile, push and run guest/check_progs with the programs), findings (what a program
changes, and whether a fact explains it), sockopt_model (what the sockopt hook hands the caller,
from the facts), report (report.html's "Your programs"), options (its pytest options).
"""
