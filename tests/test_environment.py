"""The pinned environment: constraints.txt pins every dependency pyproject.toml declares, at a
version pyproject allows, and make (hence CI) installs with it."""

import re
import tomllib

from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            found[canonicalize_name(name)] = version
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(r) for r in project["dependencies"] + extras.get("dev", [])]


def disagreements(requirements, pinned) -> list[str]:
    problems = []
    for req in requirements:
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: in pyproject.toml, not pinned in constraints.txt")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: constraints.txt pins {version}, pyproject.toml "
                            f"wants {req.specifier}")
    return problems


def test_constraints_pin_every_declared_dependency_within_its_range():
    assert disagreements(declared(), pins()) == []


def test_a_disagreement_is_caught():
    pinned = pins() | {"keras": "2.15.0"}
    pinned.pop("fastapi")
    assert disagreements(declared(), pinned) == [
        "keras: constraints.txt pins 2.15.0, pyproject.toml wants >=3.6",
        "fastapi: in pyproject.toml, not pinned in constraints.txt"]


def test_make_and_ci_install_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", makefile)
    assert re.search(r"^\$\(STAMP\): pyproject\.toml constraints\.txt", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
