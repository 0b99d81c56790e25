"""The wheel carries the files an installed kregress reads (check-progs' and the scenarios'
guest programs, progs/, the kernel matrix and the TOML lists) as kregress/_data, so `pip
install` gives a working tool without a checkout. A checkout reads its own copies
(kregress/paths.py), so an editable install copies nothing."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ["guest", "progs", "configs", "kernels.toml", "kernel-log-allowlist.toml", "known-differences.toml"]


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "kregress" / "_data"
        shutil.rmtree(target, ignore_errors=True)
        for name in SHIPPED:
            source = Path(name)
            if not source.exists():     # a wheel without it would fail only where it is used
                raise SystemExit(f"setup.py: {name} is missing from the source tree (MANIFEST.in ships it)")
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.o"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithData})
