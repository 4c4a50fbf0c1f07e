"""The workflow profile (workflow/profiles/default, reached through the top-level `profiles` link)
is what Snakemake loads for every run of the top-level Snakefile."""
from __future__ import annotations

import pytest

from workflow_helpers import REPO, make_workdir, snakemake

pytestmark = pytest.mark.workflow


def test_snakemake_loads_the_workflow_profile(tmp_path):
    workdir = make_workdir(tmp_path)
    result = snakemake(workdir, "--dry-run", timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"Using workflow specific profile {REPO / 'profiles' / 'default'}" in output
    # the profile's printshellcmds is in effect: a dry run shows the jobs' shell commands
    assert "python -m saliency_bench images" in output


def test_the_profile_link_points_into_workflow():
    link = REPO / "profiles"
    assert link.is_symlink() and link.resolve() == (REPO / "workflow" / "profiles").resolve()
