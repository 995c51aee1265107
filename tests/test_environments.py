"""The conda environments pin exactly what requirements.txt pins, within pyproject's ranges."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


def test_conda_envs_match_requirements():
    required = pins((ROOT / "requirements.txt").read_text().splitlines())
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        pinned = pins(pip)
        assert pinned, env
        for name, version in pinned.items():
            assert required.get(name) == version, f"{env.name}: {name}=={version}"
        assert "python=3.11" in spec["dependencies"]


def test_requirements_satisfy_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = pins((ROOT / "requirements.txt").read_text().splitlines())
    extras = project["optional-dependencies"].values()
    declared = project["dependencies"] + [text for extra in extras for text in extra]
    for text in declared:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in required, f"{name} is not pinned in requirements.txt"
        assert requirement.specifier.contains(required[name]), f"{name}=={required[name]}"
