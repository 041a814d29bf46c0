"""A shipped params profile is complete: every section and key the pipeline reads from
params.yaml is there too (dvc.yaml interpolates some, e.g. register.model)."""

import pytest
import yaml
from conftest import ROOT

PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profile_has_every_params_section_and_key(profile):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    other = yaml.safe_load(profile.read_text())
    assert set(params) <= set(other), f"missing sections: {set(params) - set(other)}"
    for section, values in params.items():
        if isinstance(values, dict):
            missing = set(values) - set(other[section] or {})
            assert not missing, f"{profile.name}: {section} lacks {sorted(missing)}"
