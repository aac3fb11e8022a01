"""Measure each function's deployment package as `make build` left it.

Zips every `.aws-sam/build/<Function>/bootstrap` the way `sam deploy` zips a
deployment package (one deflate-compressed, executable entry named `bootstrap`)
and writes {function: {bootstrap_bytes, zip_bytes}} as JSON to the path given
(default target/bench/sizes.json). Fails unless every bootstrap is a 64-bit
little-endian ELF for aarch64, the architecture the template deploys (arm64).
"""

import io
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"


EM_AARCH64 = 183


def is_aarch64_elf(header: bytes) -> bool:
    # e_ident: magic, class 2 (64-bit), data 1 (little-endian); e_machine at 18.
    return (
        header[:4] == b"\x7fELF"
        and header[4] == 2
        and header[5] == 1
        and int.from_bytes(header[18:20], "little") == EM_AARCH64
    )


def zipped_size(bootstrap: Path) -> int:
    buf = io.BytesIO()
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16  # a regular, executable file
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(info, bootstrap.read_bytes())  # zlib's default level, as sam deploy zips
    return len(buf.getvalue())


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "bench" / "sizes.json"
    binaries = sorted(BUILD.glob("*/bootstrap"))
    if not binaries:
        sys.exit(f"no {BUILD}/*/bootstrap: run `make build` first")
    wrong = [str(b) for b in binaries if not is_aarch64_elf(b.read_bytes()[:20])]
    if wrong:
        sys.exit(f"not aarch64 ELF executables: {', '.join(wrong)}")
    sizes = {
        b.parent.name: {"bootstrap_bytes": b.stat().st_size, "zip_bytes": zipped_size(b)}
        for b in binaries
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(sizes, indent=2) + "\n")


if __name__ == "__main__":
    main()
