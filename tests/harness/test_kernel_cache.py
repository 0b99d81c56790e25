"""The download cache against the real Debian archive: a cached package is verified
against the SHA256 of the signed index every time, and fetched again when it is
truncated or corrupted. Uses the small 'hello' package, not a kernel."""
import hashlib


from kregress.kernels.sources.debian import DebianArchive


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_or_corrupted_package_is_fetched_again(tmp_path):
    archive = DebianArchive("bookworm")
    archive.update()
    fields = archive.show("hello")
    deb, fetched = archive.download(fields, tmp_path)
    assert fetched == int(fields["Size"]) and sha256(deb) == fields["SHA256"]

    assert archive.download(fields, tmp_path) == (deb, 0), "a good cached copy must not be fetched again"

    deb.write_bytes(deb.read_bytes()[: fetched // 2])          # truncated
    again, fetched = archive.download(fields, tmp_path)
    assert fetched == int(fields["Size"]) and sha256(again) == fields["SHA256"]

    data = bytearray(again.read_bytes())                        # same size, one byte flipped
    data[len(data) // 2] ^= 0xFF
    again.write_bytes(bytes(data))
    again, fetched = archive.download(fields, tmp_path)
    assert fetched == int(fields["Size"]) and sha256(again) == fields["SHA256"]
