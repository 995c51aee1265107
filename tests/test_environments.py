"""The conda environments pin exactly what requirements.txt pins, within pyproject's ranges.

Both ways, package by package: every package of an environment is pinned with ``==`` to the
version requirements.txt pins, and every package requirements.txt pins is in every environment
unless it is listed in ``NOT_IN_ENVS`` below.
"""

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))

# Pinned in requirements.txt but not needed inside the rules' environments: the tools that run
# the workflow (Snakemake starts the rules; no rule imports it) and the ones that test and lint.
NOT_IN_ENVS = {
    "snakemake": "runs the workflow, outside the rule environments",
    "snakemake-executor-plugin-slurm": "submits jobs, outside the rule environments",
    "pytest": "tests only",
    "ruff": "lint only",
    "snakefmt": "lint only",
}
# Conda packages of an environment besides its pip section.
CONDA_PACKAGES = {"python=3.11", "pip"}


def exact_pins(lines: list[str], where: str) -> dict[str, str]:
    """Package -> version of requirement lines, each of which must be ``name==version``."""
    pins: dict[str, str] = {}
    for line in lines:
        text = line.split("#")[0].strip()
        if not text:
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise AssertionError(f"{where}: {text!r} is not a requirement ({error})") from None
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{where}: {text!r} is not pinned with == to one version"
        )
        assert not requirement.marker and not requirement.url, f"{where}: {text!r}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{where}: {name} is listed twice"
        pins[name] = specifiers[0].version
    return pins


def required() -> dict[str, str]:
    return exact_pins((ROOT / "requirements.txt").read_text().splitlines(), "requirements.txt")


def env_pins(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    conda = [d for d in spec["dependencies"] if not isinstance(d, dict)]
    sections = [d for d in spec["dependencies"] if isinstance(d, dict)]
    assert set(conda) == CONDA_PACKAGES, f"{env.name}: conda packages {conda}"
    assert len(sections) == 1 and list(sections[0]) == ["pip"], f"{env.name}: {sections}"
    pip = [str(line) for line in sections[0]["pip"]]
    # The rules import the package from the workflow's src/ (the Snakefile's shell prefix): a
    # path here would be resolved from Snakemake's copy of the file, in .snakemake/conda/.
    assert not any(line.startswith("-e") or "/" in line for line in pip), (
        f"{env.name}: the environment installs no package from a path"
    )
    return exact_pins(pip, env.name)


def test_there_are_environments():
    assert ENVS


@pytest.mark.parametrize("env", ENVS, ids=lambda env: env.name)
def test_conda_env_pins_what_requirements_pin(env):
    pins, expected = env_pins(env), required()
    for name, version in pins.items():
        assert name in expected, f"{env.name}: {name} is not in requirements.txt"
        assert version == expected[name], f"{env.name}: {name}=={version}, {expected[name]} there"
    for name in expected:
        if name not in NOT_IN_ENVS:
            assert name in pins, f"{env.name}: lacks {name}=={expected[name]}"


def test_every_exception_is_pinned_in_requirements():
    assert set(NOT_IN_ENVS) <= set(required())


def test_requirements_satisfy_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = required()
    extras = project["optional-dependencies"].values()
    declared = project["dependencies"] + [text for extra in extras for text in extra]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in requirements.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}"


def pinned_lines(text: str) -> list[str]:
    return [line for line in text.splitlines(keepends=True) if "==" in line]


def drop(text: str) -> str:
    return text.replace(pinned_lines(text)[-1], "")


def loosen(text: str) -> str:
    line = pinned_lines(text)[0]
    return text.replace(line, line.replace("==", ">="))


def other_version(text: str) -> str:
    line = pinned_lines(text)[0]
    return text.replace(line, line.rstrip() + ".post1\n")


def extra(text: str) -> str:
    line = pinned_lines(text)[0]
    return text.replace(line, line + line[: line.index("-")] + "- rich==14.0\n")


@pytest.mark.parametrize("change", [drop, loosen, other_version, extra])
def test_the_check_catches_a_changed_env(tmp_path, change):
    env = ROOT / "envs" / "bags.yaml"
    changed = change(env.read_text())
    assert changed != env.read_text()
    copy = tmp_path / "bags.yaml"
    copy.write_text(changed)
    with pytest.raises(AssertionError):
        test_conda_env_pins_what_requirements_pin(copy)
