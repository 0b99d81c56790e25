"""pytest wiring for kregress, handed on to one module per job: options (the command line and
what it sets up), fixtures (what tests ask for, parametrized over the kernels), records (each
test's results entry, each kernel's record once), summary (what the run prints), fleet (a fleet's cases: --fleet). conftest.py and
xdist workers load this package by name ("kregress.plugin")."""
pytest_plugins = ["kregress.plugin.options", "kregress.plugin.fixtures", "kregress.plugin.records",
                  "kregress.plugin.summary", "kregress.plugin.fleet"]
