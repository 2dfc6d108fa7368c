"""The repository stands on its own: no machine path and no citation of a document outside it.

Code and docs explain in their own words (docs/algorithms/) and cite papers, never a section of a
private spec ("spec 2.4") or an absolute path of the machine they were written on.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("agents", "envs", "benchmarks", "docs", "tests")
SUFFIXES = {".py", ".md", ".json", ".txt", ".toml", ".cfg", ".yaml", ".yml"}
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|root|Users|tmp|mnt|opt)/[\w.-]+")
SPEC_CITATION = re.compile(r"\bspecs?(?:'s)?\s+(?:section\s+|item\s+)?\d+(?:\.\d+)*", re.IGNORECASE)
OUTSIDE_DOC = re.compile(r"shared/(?:specs|ARCHITECTURE)")


def repo_files():
    """The repository's files (tracked, or untracked and not ignored: run outputs are not the repo's)."""
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode == 0:
        candidates = [ROOT / line for line in listed.stdout.splitlines()]
    else:  # not a git checkout: every file below the scanned folders
        candidates = [p for folder in SCANNED for p in (ROOT / folder).rglob("*")]
    top = {"README.md", "train.py", "evaluate.py", "pyproject.toml"}
    files = [
        p
        for p in candidates
        if p.suffix in SUFFIXES and (p.relative_to(ROOT).parts[0] in SCANNED or str(p.relative_to(ROOT)) in top)
    ]
    return [p for p in files if p.is_file() and p.name != Path(__file__).name]


@pytest.mark.parametrize("pattern", [ABSOLUTE_PATH, SPEC_CITATION, OUTSIDE_DOC], ids=["path", "spec", "outside"])
def test_no_machine_paths_or_outside_citations(pattern):
    hits = []
    for path in repo_files():
        for number, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits[:20])


def test_the_patterns_catch_what_they_should():
    assert ABSOLUTE_PATH.search("see /home/someone/specs/erc.md") and not ABSOLUTE_PATH.search("docs/benchmarks.md")
    assert SPEC_CITATION.search("(spec 2.4)") and SPEC_CITATION.search("ERC spec section 6.5")
    assert SPEC_CITATION.search("the spec's 6.1 placements") and not SPEC_CITATION.search("obs_spec.shape[0]")


def test_each_family_has_its_algorithm_note():
    for note in ("sac", "dqn", "erc", "cooperative_marl", "qarl"):
        text = (ROOT / "docs" / "algorithms" / f"{note}.md").read_text()
        assert "arXiv" in text or "doi" in text.lower(), note


@pytest.mark.parametrize("output", ["runs/sac_x/config.json", "sweeps/pendulum/manifest.json"])
def test_run_outputs_are_ignored_by_git(output):
    """train.py writes runs/ and sweeps/ in the source tree: left unignored, every later run records a
    ``+dirty`` commit in its config.json."""
    import subprocess

    checked = subprocess.run(["git", "check-ignore", "-q", output], cwd=ROOT)
    if checked.returncode == 128:
        pytest.skip("not a git checkout")
    assert checked.returncode == 0, f"{output} is not ignored by .gitignore"


def test_the_algorithm_index_is_one_table_with_a_row_per_note():
    """docs/algorithms/README.md: a blank line inside the table splits it in two (the rows after it
    render as text), and every note in the folder has its row."""
    folder = ROOT / "docs" / "algorithms"
    lines = (folder / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| note |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start + 2 : end]
    listed = {row.split("](", 1)[1].split(")", 1)[0] for row in rows if "](" in row}
    notes = {p.name for p in folder.glob("*.md") if p.name != "README.md"}
    assert listed == notes, f"table rows {sorted(listed)} against notes {sorted(notes)}"
    after = [line for line in lines[end:] if line.startswith("| [")]
    assert not after, f"rows after the table's end (a blank line splits it): {after}"
