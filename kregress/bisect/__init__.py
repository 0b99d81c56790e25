"""Bisecting kernels for a behaviour.

bisect-run      one step of `git bisect run`, inside a kernel source tree: build the
                checked-out kernel with virtme-ng (configs/bisect.config), boot it, run
                a pytest selection, answer 0 (good/old), 1 (bad/new) or 125 (this
                commit cannot be judged), or 128, which aborts git bisect, for what
                would be the same at every commit (a usage error, a broken harness).
bisect-kernels  coarse bisection over prebuilt kernels (kernels.toml entries, in the
                order given): boots about log2(N) of them to find the first kernel whose
                observed behaviour differs from the first one's, and prints the range to
                hand to a source bisect.

Both append one JSON line per step to a log as they go (build, each run, the verdict;
each kernel booted), so an interrupted bisection loses nothing; bisect-kernels reuses
the kernels already judged in its log when started again.

The package, one module per job: steps (the step log), judge (a results file ->
good/bad/skip), run (bisect-run), coarse (bisect-kernels); kregress.kernels.tree builds the tree.
"""


def main(argv: list[str]) -> int:
    """Entry from cli.py: argv[0] is bisect-run or bisect-kernels."""
    if argv[0] == "bisect-run":
        from kregress.bisect.run import main_run
        return main_run(argv[1:])
    from kregress.bisect.coarse import main_kernels
    return main_kernels(argv[1:])
