"""Where the living review's baseline comes from, and reading / writing a snapshot.

The baseline is a snapshot directory (`snapshot_tables.SNAPSHOT_FILES`, CSV only) written by
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
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.config import input_path
from timecourse_meta.pipeline.snapshot_tables import REQUIRED_TABLES, SNAPSHOT_FILES, make_snapshot
from timecourse_meta.pipeline.tables import to_csv_text

__all__ = ["Baseline", "current_snapshot", "read_snapshot", "resolve_baseline", "write_snapshot"]

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


def _read_text(baseline: Baseline, name: str, root: Path) -> str | None:
    if baseline.kind == "dir":
        file = root / baseline.path / name
        return file.read_text(encoding="utf-8") if file.is_file() else None
    shown = _git(["show", f"{baseline.commit}:./{baseline.path}/{name}"], root)
    return shown.stdout.decode("utf-8") if shown.returncode == 0 else None


def read_snapshot(baseline: Baseline, root: str | Path) -> dict[str, pd.DataFrame]:
    """The baseline's tables as text frames (every cell a string, as written)."""
    out: dict[str, pd.DataFrame] = {}
    for table, name in SNAPSHOT_FILES.items():
        text = _read_text(baseline, name, Path(root))
        if text is None:
            if table in REQUIRED_TABLES:
                raise ConfigError(f"baseline {baseline.label} has no {name}", key="baseline")
            continue
        out[table] = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False
        )
    return out


def write_snapshot(snapshot: dict[str, pd.DataFrame], directory: str | Path) -> list[Path]:
    """Write the snapshot's tables as CSV into `directory`; stale snapshot files are removed."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for table, name in SNAPSHOT_FILES.items():
        file = target / name
        if table in snapshot:
            with open(file, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(to_csv_text(snapshot[table]))
            written.append(file)
        elif file.exists():
            file.unlink()
    return written


def _read_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def current_snapshot(
    files: Mapping[str, str | Path], config: Mapping[str, object]
) -> dict[str, pd.DataFrame]:
    """The snapshot of this run from its output files (`files`: table name -> path; `rows` is
    data/processed/rows.parquet, `software` software_versions.txt, the rest results CSVs)."""
    optional = {
        name: _read_csv(files[name]) for name in ("multivariate", "time_response") if name in files
    }
    return make_snapshot(
        rows=pd.read_parquet(files["rows"]),
        pooled=_read_csv(files["pooled"]),
        claims=_read_csv(files["claims"]),
        effects=_read_csv(files["effects"]),
        exclusions=_read_csv(files["exclusions"]),
        row_accounting=_read_csv(files["row_accounting"]),
        config=config,
        software=Path(files["software"]).read_text(encoding="utf-8"),
        **optional,
    )
