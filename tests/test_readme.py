"""The README's bad-input table names real tests: every `file.py::test_name` in it exists."""

import ast
import re

from conftest import ROOT


def test_every_test_named_in_the_bad_input_table_exists():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Bad input, everywhere input enters", 1)[1].split("\n### ", 1)[0]
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", table)
    assert len(named) >= 30
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert all("::test_" in row for row in rows[1:]), "every row names its test"
    missing = []
    for file, name in named:
        tree = ast.parse((ROOT / "tests" / file).read_text())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{file}::{name}")
    assert missing == []
