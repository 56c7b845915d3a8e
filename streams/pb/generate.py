"""Regenerate the protobuf modules in streams/pb from proto/: ``python -m streams.pb.generate``.

protoc writes top-level imports (``import Common_pb2``) that only work with the output
directory on sys.path; we rewrite them to package-absolute imports so the generated
modules live inside ``streams.pb`` without path tricks. A unit test regenerates into a
temporary directory and compares bytes, so stale files fail CI.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
OUT_ROOT = Path(__file__).resolve().parent

# (include dir relative to proto/, output package relative to streams/pb, proto files)
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "opend",
        "opend",
        (
            "Common.proto",
            "Qot_Common.proto",
            "InitConnect.proto",
            "KeepAlive.proto",
            "GetGlobalState.proto",
            "Notify.proto",
            "Qot_GetCapitalDistribution.proto",
            "Qot_GetCapitalFlow.proto",
            "Qot_GetUserSecurity.proto",
        ),
    ),
    ("", "", ("capflow/v1/snapshot.proto", "capflow/v1/capital_flow.proto")),
)

_PY_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _run_protoc(include: Path, out: Path, files: tuple[str, ...]) -> None:
    from grpc_tools import protoc  # dev dependency, only needed to regenerate

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {files}")


def _rewrite(path: Path, package: str) -> None:
    """Make protoc's top-level imports of sibling modules package-absolute."""
    text = path.read_text()
    text = _PY_IMPORT.sub(rf"from {package} import \1 as \2", text)
    path.write_text(text)


def _ensure_packages(root: Path, top: Path) -> None:
    """Every directory between ``top`` and generated modules is a package."""
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        if directory.name == "__pycache__":
            continue
        init = directory / "__init__.py"
        if not init.exists() and directory != top:
            init.write_text('"""Generated protobuf modules (python -m streams.pb.generate)."""\n')


def generate(out_root: Path = OUT_ROOT) -> list[Path]:
    """Generate every group into ``out_root``; returns the generated files."""
    written: list[Path] = []
    for include, subpackage, files in GROUPS:
        out = out_root / subpackage if subpackage else out_root
        _run_protoc(PROTO_ROOT / include if include else PROTO_ROOT, out, files)
        package = "streams.pb" + (f".{subpackage}" if subpackage else "")
        for name in files:
            stem = name.removesuffix(".proto")
            for suffix in ("_pb2.py", "_pb2.pyi"):
                path = out / f"{stem}{suffix}"
                _rewrite(path, package)
                written.append(path)
    _ensure_packages(out_root, out_root)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT_ROOT, help="output root (streams/pb)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


def generated_in_tempdir() -> dict[str, bytes]:
    """Fresh output keyed by path relative to the root (for the staleness test)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        return {str(p.relative_to(root)): p.read_bytes() for p in generate(root)}


if __name__ == "__main__":
    sys.exit(main())
