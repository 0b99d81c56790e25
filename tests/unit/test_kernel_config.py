"""The kernel's config: a file beside the image, `config` in kernels.toml, or IKCONFIG (in the
image or in configs.ko); and what preflight says when there is none."""
import gzip

import pytest
from kernelimages import COMPRESS, bzimage

from kregress.kernels.entries import KernelsFileError, parse_kernels
from kregress.kernels.kconfig import config_of, ikconfig, parse_config
from kregress.kernels.sources import resolve
from kregress.run.boot_inputs import preflight
from kregress.run.errors import BootError

DOT_CONFIG = """#
# Automatically generated file; DO NOT EDIT.
CONFIG_BPF_LSM=y
CONFIG_LSM="landlock,lockdown,yama,bpf"
# CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS is not set
CONFIG_EROFS_FS=m
"""
PARSED = {"CONFIG_BPF_LSM": "y", "CONFIG_LSM": "landlock,lockdown,yama,bpf", "CONFIG_EROFS_FS": "m"}


def with_ikconfig(text: str) -> bytes:
    """kernel/configs.c: "IKCFG_ST", the gzipped .config, "IKCFG_ED", inside the kernel's data."""
    return b"\x7fELF" + b"\0" * 500 + b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED" + b"\0" * 100


def test_parse_config_keeps_set_options_only():
    assert parse_config(DOT_CONFIG) == PARSED


def test_ikconfig_in_a_compressed_image():
    assert ikconfig(with_ikconfig(DOT_CONFIG)) == DOT_CONFIG
    assert ikconfig(b"\x7fELF no config here") is None
    assert ikconfig(b"IKCFG_ST but no gzip after it") is None


def test_config_of_prefers_a_file_then_ikconfig_then_configs_ko(tmp_path):
    image = tmp_path / "bzImage"
    image.write_bytes(bzimage(COMPRESS["zstd"](with_ikconfig(DOT_CONFIG))))
    dot = tmp_path / ".config"
    assert config_of(image, [dot]) == (PARSED, "IKCONFIG")
    dot.write_text("CONFIG_X=y\n")
    assert config_of(image, [dot]) == ({"CONFIG_X": "y"}, str(dot))

    plain = tmp_path / "plain"
    plain.write_bytes(bzimage(COMPRESS["xz"](b"\x7fELF" + b"\0" * 300)))
    modules = tmp_path / "lib/modules/6.1.0"
    assert config_of(plain, [], modules) == ({}, None)
    (modules / "kernel/kernel").mkdir(parents=True)
    (modules / "kernel/kernel/configs.ko.gz").write_bytes(gzip.compress(with_ikconfig(DOT_CONFIG)))
    assert config_of(plain, [], modules) == (PARSED, "IKCONFIG")


def local_kernel(tmp_path, inner: bytes, **entry):
    image = tmp_path / "build/arch/x86/boot/bzImage"
    image.parent.mkdir(parents=True)
    image.write_bytes(bzimage(COMPRESS["xz"](inner)))
    spec, = parse_kernels({"kernel": [{"id": "own", "image": str(image), "version": "6.12.1", **entry}]}, "kernels.toml")
    return resolve(spec)


def test_a_config_less_image_is_refused_naming_both_fixes(tmp_path):
    """An everything-built-in kernel with neither a .config nor IKCONFIG: preflight cannot tell built-in
    from missing, and says so instead of asking for modules."""
    kernel = local_kernel(tmp_path, b"\x7fELF" + b"\0" * 300)
    assert (kernel.config, kernel.config_source) == ({}, None)
    with pytest.raises(BootError, match=r"own: no config found for .*bzImage \(no config file beside it, no IKCONFIG "
                                        r"in it\): give `config` in kernels.toml \(the kernel's .config\) or build "
                                        r"with CONFIG_IKCONFIG"):
        preflight(kernel)


def test_ikconfig_lets_preflight_name_the_missing_option(tmp_path):
    kernel = local_kernel(tmp_path, with_ikconfig(DOT_CONFIG))
    assert kernel.config_source == "IKCONFIG"
    with pytest.raises(BootError, match="its config lacks CONFIG_"):
        preflight(kernel)


def test_config_key_for_a_local_image(tmp_path):
    given = tmp_path / "my.config"
    given.write_text(DOT_CONFIG)
    kernel = local_kernel(tmp_path, b"\x7fELF" + b"\0" * 300, config=str(given))
    assert (kernel.config, kernel.config_source) == (PARSED, str(given))
    with pytest.raises(KernelsFileError, match="'config' belongs to a tree entry .* or a local image"):
        parse_kernels({"kernel": [{"id": "d", "suite": "bookworm", "config": "x"}]}, "kernels.toml")
