"""Where the living review's baseline comes from (config `baseline`).

The baseline is a snapshot directory (`schema.SNAPSHOT_FILES`, CSV only) written by
`snakemake baseline` to `<results_dir>/baseline/` and committed. The config key `baseline`
(or `--config baseline=...`) says which one a run is compared with:

* absent / null: the committed `<results_dir>/baseline/` of `HEAD` when the project is a git
  checkout that has one, else that directory in the working tree when it exists, else none
  (the `changes` rule is then not part of the default target);
* `git:REF`: the `<results_dir>/baseline/` of that commit, branch or tag, read with
  `git show REF:./path` (nothing is checked out);
* a project-relative directory holding a snapshot;
* `none`: no comparison.

A baseline named explicitly that cannot be read stops the run with one line naming the key.

Standard library only: Snakemake's parse of ``workflow/rules/changes.smk`` locates the
baseline without loading pandas.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.config import input_path
from timecourse_meta.schema import REQUIRED_TABLES, SNAPSHOT_FILES

__all__ = ["Baseline", "resolve_baseline"]

# a git revision as a user would type it; no leading '-' (never read as an option)
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/@{}~^+-]*")


@dataclass(frozen=True)
class Baseline:
    """A located baseline: `kind` 'git', 'dir' or 'none'."""

    kind: str
    path: str = ""  # snapshot directory, project-relative
    ref: str = ""  # git revision as given
    commit: str = ""  # the commit it resolved to
    digest: str = ""  # changes whenever the snapshot's content changes

    @property
    def label(self) -> str:
        """How changes.md names the baseline."""
        if self.kind == "git":
            return f"`git:{self.ref}` ({self.path}/ at commit {self.commit[:12]})"
        if self.kind == "dir":
            return f"directory `{self.path}/`"
        return "none"


def _git(args: list[str], root: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False, timeout=60)


def _git_baseline(ref: str, path: str, root: Path, *, explicit: bool) -> Baseline:
    if not _REF.fullmatch(ref):
        raise ConfigError(f"'git:{ref}' is not a git revision name", key="baseline")
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    except (OSError, subprocess.SubprocessError):
        if explicit:
            raise ConfigError(
                f"'git:{ref}' needs git, which cannot be run", key="baseline"
            ) from None
        return Baseline("none")
    if commit.returncode != 0:
        if explicit:
            raise ConfigError(
                f"'git:{ref}': no such commit, branch or tag in this repository "
                "(a shallow clone may lack it: fetch it first)",
                key="baseline",
            )
        return Baseline("none")
    tree = _git(["rev-parse", "--verify", "--quiet", f"{ref}:./{path}"], root)
    if tree.returncode != 0:
        if explicit:
            raise ConfigError(
                f"'git:{ref}' has no {path}/ (write one with `snakemake baseline` and commit it)",
                key="baseline",
            )
        return Baseline("none")
    return Baseline(
        "git",
        path=path,
        ref=ref,
        commit=commit.stdout.decode().strip(),
        digest="git-tree:" + tree.stdout.decode().strip(),
    )


def _dir_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(SNAPSHOT_FILES.values()):
        file = directory / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def resolve_baseline(value: object, results_dir: str, root: str | Path) -> Baseline:
    """Locate the baseline named by the config value (module docstring); ConfigError if a
    named baseline is missing."""
    root = Path(root)
    default_dir = f"{results_dir}/baseline"
    if value is None or (isinstance(value, str) and value.strip() == ""):
        found = _git_baseline("HEAD", default_dir, root, explicit=False)
        if found.kind == "none" and (root / default_dir / SNAPSHOT_FILES["rows"]).is_file():
            return Baseline("dir", path=default_dir, digest=_dir_digest(root / default_dir))
        return found
    text = str(value).strip()
    if text.lower() == "none":
        return Baseline("none")
    if text.startswith("git:"):
        return _git_baseline(text[4:], default_dir, root, explicit=True)
    path = input_path(text, "baseline").rstrip("/")
    if not (root / path).is_dir():
        raise ConfigError(f"baseline directory '{path}' not found", key="baseline")
    missing = [n for n in REQUIRED_TABLES if not (root / path / SNAPSHOT_FILES[n]).is_file()]
    if missing:
        raise ConfigError(
            f"'{path}' is not a baseline snapshot (missing {SNAPSHOT_FILES[missing[0]]}; "
            "write one with `snakemake baseline`)",
            key="baseline",
        )
    return Baseline("dir", path=path, digest=_dir_digest(root / path))
