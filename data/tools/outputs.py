"""What the conversion scripts of data/tools share: writing the converted files."""
import hashlib
import os


def write_files(out, files):
    """Writes {relative name: text} under `out` as UTF-8 and prints each file's sha256 and
    line count (data/SOURCES.md lists them; the bundled copies are these files, zstd-compressed)."""
    for name, text in files.items():
        data = text.encode("utf-8")
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        print("%s  %s (%d lines)" % (hashlib.sha256(data).hexdigest(), name, text.count("\n")))
