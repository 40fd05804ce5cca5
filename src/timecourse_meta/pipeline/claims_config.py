"""The claims file (config `claims_file`): read, schema-checked and validated before any rule runs.

Kept apart from :mod:`~timecourse_meta.pipeline.claims` (which judges the claims on the pooled
tables, with pandas) so that Snakemake's parse of ``workflow/rules/common.smk`` checks the file
without loading pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from timecourse_meta.errors import ConfigError, excerpt
from timecourse_meta.pipeline.config import load_yaml, schema_problems
from timecourse_meta.schema import CHECKS, DIRECTIONS

__all__ = ["load_claims", "validate_claims"]


def _conditions(claim: Mapping[str, object]) -> list[Mapping[str, object]]:
    if "all_of" in claim:
        items = claim["all_of"]
        if not isinstance(items, Sequence) or isinstance(items, str) or not items:
            raise ConfigError(
                f"claim '{claim.get('id')}': all_of must be a non-empty list", key="claims"
            )
        return list(items)  # type: ignore[arg-type]
    return [claim]


def _claim_where(claims: object, path: str) -> str:
    """'claim 3 (id 'x')' for a schema key path such as 'claims.2.all_of.0.window'."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "claims" or not parts[1].isdigit():
        return path
    index = int(parts[1])
    where = f"claim {index + 1}"
    item = claims[index] if isinstance(claims, list) and index < len(claims) else None
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        where += f" (id {excerpt(item['id'])})"
    rest = ".".join(parts[2:])
    return where + (f", {rest}" if rest else "")


def load_claims(
    path: str | Path,
    schema: Mapping[str, object],
    windows: Sequence[str],
    subgroups: Sequence[str] = (),
    *,
    shown: str | None = None,
    strict_windows: bool = True,
) -> list[Mapping[str, object]]:
    """Read the claims file and check it before any rule runs; return its list of claims.

    Plain YAML only (`config.load_yaml`: no Python tags, no key given twice), the JSON schema
    `config/schema/claims.schema.yaml` (a claim that is a plain string, an `all_of` entry that
    is not a condition, `levels: true` ...), then `validate_claims` (known checks, configured
    windows and subgroups). Raises ConfigError (key `claims_file`) naming the file and the claim;
    when there are several problems the first is shown with the number of others.
    """
    name = shown or Path(path).as_posix()
    if not Path(path).is_file():
        what = "is not a file" if Path(path).exists() else "not found"
        raise ConfigError(f"{name} {what}", key="claims_file")
    data = load_yaml(path)
    if data is None:
        data = {}
    problems = schema_problems(data, schema)
    if problems:
        where, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        claims = data.get("claims") if isinstance(data, Mapping) else None
        where = _claim_where(claims, where) if where != "(top level)" else "top level"
        raise ConfigError(f"{name}, {where}: {message}{more}", key="claims_file")
    claims = list(data["claims"])  # type: ignore[index]
    try:
        validate_claims(claims, windows, subgroups, strict_windows=strict_windows)
    except ConfigError as err:
        raise ConfigError(
            f"{name}: {str(err).removeprefix('config ' + repr('claims') + ': ')}", key="claims_file"
        ) from None
    return claims


def validate_claims(
    claims: Sequence[Mapping[str, object]],
    windows: Sequence[str],
    subgroups: Sequence[str] = (),
    *,
    strict_windows: bool = True,
) -> None:
    """Raise `ConfigError` for an unknown check, window, direction or unconfigured subgroup.

    `strict_windows=False`: a window that is not configured is allowed (its conditions are
    "not testable", see `check_claims`), so the shipped claims do not stop a run whose windows
    were changed on the command line.
    """
    seen: set[str] = set()
    for claim in claims:
        cid = str(claim.get("id", "")).strip()
        if not cid or cid in seen:
            raise ConfigError(f"every claim needs a unique id (problem: {cid!r})", key="claims")
        seen.add(cid)
        for field in ("claim", "source"):
            if not str(claim.get(field, "")).strip():
                raise ConfigError(f"claim '{cid}' needs '{field}'", key="claims")
        for cond in _conditions(claim):
            check = cond.get("check")
            if check not in CHECKS:
                raise ConfigError(
                    f"claim '{cid}': unknown check {check!r} (expected one of {', '.join(CHECKS)})",
                    key="claims",
                )
            if strict_windows and str(cond.get("window")) not in windows:
                raise ConfigError(
                    f"claim '{cid}': window {cond.get('window')!r} is not a "
                    f"configured window ({', '.join(windows)})",
                    key="claims",
                )
            if cond.get("direction", "positive") not in DIRECTIONS:
                raise ConfigError(
                    f"claim '{cid}': direction must be one of {', '.join(DIRECTIONS)}", key="claims"
                )
            sub = cond.get("subgroup")
            if sub is not None and sub not in subgroups:
                raise ConfigError(
                    f"claim '{cid}': subgroup '{sub}' is not a configured subgroup", key="claims"
                )
            if (
                check in ("ci_excludes_0", "ci_includes_0")
                and sub is not None
                and len(cond.get("levels") or []) != 1  # type: ignore[arg-type]
            ):
                raise ConfigError(
                    f"claim '{cid}': {check} with a subgroup needs exactly one level in levels",
                    key="claims",
                )
            if check == "all_ci_exclude_0" and (sub is None or not cond.get("levels")):
                raise ConfigError(
                    f"claim '{cid}': all_ci_exclude_0 needs subgroup and levels", key="claims"
                )
            if check == "proportion_ci_overlaps":
                rng = cond.get("range")
                ok = (
                    isinstance(rng, Sequence)
                    and len(rng) == 2
                    and all(isinstance(x, (int, float)) for x in rng)
                    and rng[0] <= rng[1]
                )
                if not ok:
                    raise ConfigError(
                        f"claim '{cid}': proportion_ci_overlaps needs range: "
                        "[low, high] with low <= high",
                        key="claims",
                    )
