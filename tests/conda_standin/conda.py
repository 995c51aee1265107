"""A stand-in for the conda commands that ``snakemake --use-conda`` runs (Snakemake 9.27,
``snakemake/deployment/conda.py``), for tests on machines that reach no conda channel:

    type conda; conda --version; conda info --json
    conda config --get channel_priority --json
    conda env create --quiet --no-default-packages --file FILE --prefix PREFIX
    conda clean -y --tarballs (nothing is cached: it does nothing)
    source <conda_prefix>/bin/activate PREFIX; <job command>

``env create`` reads FILE, the copy Snakemake makes in ``.snakemake/conda/``, as conda would:
``python=X.Y`` must be the version of the Python running this script (``CONDA_STANDIN_PYTHON``
in ``bin/conda``); PREFIX becomes a virtual environment of that Python, which sees the
packages already installed for it through a ``.pth`` file instead of downloading them; then the
``pip:`` section is installed as conda installs it: written to a requirements file beside FILE
and given to ``pip install -U -r`` run in FILE's folder, so that a relative path in it resolves
from ``.snakemake/conda/``. pip runs with ``--no-index``: its pins must already be satisfied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent  # conda_prefix: bin/activate lives under it
VERSION = "24.7.1"  # Snakemake 9.27 wants at least this


def fail(message: str) -> None:
    print(f"conda (stand-in): {message}", file=sys.stderr)
    sys.exit(1)


def create(file: Path, prefix: Path) -> None:
    spec = yaml.safe_load(file.read_text())
    pip_specs = []
    for dependency in spec.get("dependencies", []):
        if isinstance(dependency, dict) and list(dependency) == ["pip"]:
            pip_specs += dependency["pip"]
        elif dependency == "pip":
            continue
        elif isinstance(dependency, str) and dependency.startswith("python="):
            have = "{}.{}".format(*sys.version_info[:2])
            if dependency != f"python={have}":
                fail(f"{file}: asks for {dependency}; this stand-in has Python {have} only")
        else:
            fail(f"{file}: cannot install conda package {dependency!r} (no channel)")
    venv.EnvBuilder(symlinks=True, with_pip=False).create(prefix)
    python = str(prefix / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "_conda_standin.pth").write_text(sysconfig.get_path("purelib") + "\n")
    if not pip_specs:
        return
    with tempfile.NamedTemporaryFile(
        "w", prefix="condaenv.", suffix=".requirements.txt", dir=file.parent, delete=False
    ) as requirements:
        requirements.write("\n".join(pip_specs) + "\n")
    try:
        command = [python, "-m", "pip", "install", "-q", "--no-index", "-U"]
        command += ["-r", requirements.name, "--exists-action=b", "--disable-pip-version-check"]
        if subprocess.run(command, cwd=file.parent).returncode:
            fail(f"pip failed on the pip section of {file}")
    finally:
        os.unlink(requirements.name)


def main(argv: list[str]) -> None:
    if argv == ["--version"]:
        print(f"conda {VERSION}")
    elif argv == ["info", "--json"]:
        info = {"conda_prefix": str(ROOT), "root_prefix": str(ROOT), "platform": "linux-64"}
        print(json.dumps({**info, "conda_version": VERSION}))
    elif argv == ["config", "--get", "channel_priority", "--json"]:
        print(json.dumps({"get": {"channel_priority": "strict"}, "success": True}))
    elif argv in (["clean", "-y", "--tarballs"], ["clean", "-y", "--tarballs", "--packages"]):
        pass
    elif argv[:2] == ["env", "create"]:
        parser = argparse.ArgumentParser(prog="conda env create")
        for flag in ("--quiet", "--no-default-packages", "--yes"):
            parser.add_argument(flag, action="store_true")
        parser.add_argument("--file", type=Path, required=True)
        parser.add_argument("--prefix", type=Path, required=True)
        args = parser.parse_args(argv[2:])
        create(args.file.resolve(), args.prefix.resolve())
    else:
        fail(f"not supported: conda {' '.join(argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
