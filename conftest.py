# pytest glue only: the harness lives in the kregress package.
pytest_plugins = ["kregress.plugin", "kregress.check_progs.options"]
