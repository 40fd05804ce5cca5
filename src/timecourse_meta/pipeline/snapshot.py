"""Reading and writing a living-review snapshot (`schema.SNAPSHOT_FILES`, CSV only).

Where the baseline comes from (config `baseline`) is :mod:`~timecourse_meta.pipeline.baseline`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.baseline import Baseline, _git
from timecourse_meta.pipeline.snapshot_tables import make_snapshot
from timecourse_meta.pipeline.tables import to_csv_text
from timecourse_meta.schema import REQUIRED_TABLES, SNAPSHOT_FILES

__all__ = ["current_snapshot", "read_snapshot", "write_snapshot"]


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
