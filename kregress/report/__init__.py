"""The report wing: everything read from a results file.

results (the schema, load, merge), record (one test's entry, typed), matrix (cases x kernels),
write (HTML, text, KCIDB and JUnit files next to results.json), markdown, junit, kcidb,
verdicts (per kernel and fact), compare (the upgrade gate), reproduce (commands that run a
guest step again), recovery (what the harness did to keep a kernel going).
"""
