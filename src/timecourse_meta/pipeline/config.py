"""Load and check the workflow configuration: plain YAML, the schema, and confined paths.

The workflow reads `config/config.yaml` (and any `--configfile`); these functions make every
problem in it a one-line `ConfigError` that names the key and what was expected:

* `load_yaml` reads YAML with `yaml.safe_load` only: tags such as `!!python/object/apply:...`
  (which other loaders turn into arbitrary Python calls) are rejected with file, line and column.
* `validate_config` checks the configuration against `config/schema/config.schema.yaml` and
  reports the first problem; an unknown key gets a "did you mean" hint.
* `input_file` checks a read-only input (sheets, published results, risk-of-bias sheet,
  claims file): an absolute path or a relative one (relative to the project, `..` allowed)
  anywhere readable, which must exist; the path is kept as given (provenance records it so).
* `input_path` / `output_dir` turn output paths into clean project-relative paths: absolute
  paths and `..` are refused, and output directories must lie inside `results/` or
  `data/processed/` after symbolic links are followed, so a run never writes elsewhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import yaml

from timecourse_meta.errors import ConfigError, excerpt
from timecourse_meta.pipeline.file_kinds import special_file_kind
from timecourse_meta.pipeline.window_specs import check_windows, unit_hours, window_specs

__all__ = [
    "WRITABLE_DIRS",
    "check_config",
    "check_config_files",
    "fill_defaults",
    "input_file",
    "input_path",
    "load_yaml",
    "normalise_command_line",
    "output_dir",
    "schema_problems",
    "time_response_in_hours",
    "validate_config",
]

# The only project directories a run may write to (plus Snakemake's own logs/ and .snakemake/).
WRITABLE_DIRS: tuple[str, ...] = ("results", "data/processed")

_TAG = re.compile(r"tag '([^']+)'")


def _where(path: str | Path, mark: yaml.Mark | None) -> str:
    if mark is None:
        return str(path)
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}"


def _shown(path: str | Path) -> str:
    """`path` relative to the working directory when it lies inside it (as messages show it)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


class _DuplicateKey(Exception):
    def __init__(self, key: object, first: yaml.Mark, second: yaml.Mark) -> None:
        self.key, self.first, self.second = key, first, second


class _UniqueKeys:
    """Mix-in for a PyYAML safe loader that refuses a key given twice in one mapping.

    PyYAML (like Snakemake's own loader) silently keeps the last value of a repeated key, so a
    setting written twice would be half-ignored; here it is an error naming both lines.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                hash(key)
            except TypeError:
                continue  # unhashable keys are reported by the base constructor
            if key in seen:
                raise _DuplicateKey(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """The pure-Python safe loader with unique keys: its syntax-error messages are reported."""


# libyaml's parser (C) when PyYAML has it: the same data, about 5x faster to parse (the config
# schema is read at every Snakemake start); its syntax errors are re-read by the pure loader.
_FastLoader = (
    type("_FastLoader", (_UniqueKeys, yaml.CSafeLoader), {})
    if getattr(yaml, "__with_libyaml__", False)
    else _UniqueKeyLoader
)


def _line(mark: yaml.Mark, other: yaml.Mark) -> str:
    if mark.line == other.line:
        return f"line {mark.line + 1} column {mark.column + 1}"
    return f"line {mark.line + 1}"


def _load_with(loader_class: type, text: str) -> object:
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _load_unique(text: str) -> object:
    """Parse one YAML document with unique keys (a safe loader: plain data only).

    libyaml parses first; any error is raised by the pure-Python loader, so messages and their
    positions do not depend on whether PyYAML was built with libyaml.
    """
    try:
        return _load_with(_FastLoader, text)
    except (yaml.YAMLError, _DuplicateKey):
        if _FastLoader is _UniqueKeyLoader:
            raise
    return _load_with(_UniqueKeyLoader, text)


def load_yaml(path: str | Path) -> object:
    """Parse a YAML file with `yaml.safe_load` (no Python object tags); errors as ConfigError.

    PyYAML's safe loader builds only plain data (mappings, lists, strings, numbers, booleans,
    null, dates); any `!!python/...` tag raises, and is reported with its position.
    """
    shown = _shown(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError(f"{shown} cannot be read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown} is not UTF-8 text") from None
    try:
        return _load_unique(text)
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{shown}: key {excerpt(dup.key)} is given twice in one mapping, on "
            f"{_line(dup.first, dup.second)} and on {_line(dup.second, dup.first)}; YAML would "
            "silently keep only the last one: delete or merge one of them"
        ) from None
    except yaml.constructor.ConstructorError as err:
        found = _TAG.search(str(err.problem or ""))
        tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else "?"
        raise ConfigError(
            f"{_where(shown, err.problem_mark)}: YAML tag '{tag}' is not allowed; the "
            "configuration must be plain YAML (keys, lists, text, numbers, true/false)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{_where(shown, mark)}: not valid YAML ({problem})") from None


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Re-read each config file with the safe loader (Snakemake's own loader is more lenient).

    Raises ConfigError for a tag the safe loader refuses or for a top level that is not a
    mapping of keys.
    """
    for path in paths:
        data = load_yaml(path)
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(
                f"{_shown(path)}: the top level must be a mapping of keys (key: value)"
            )


def _key(path: Iterable[object]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


_KIND_WORDS = {
    "array": "a list",
    "null": "null (nothing: `null` or `~` in a YAML file)",
    "object": "a mapping (key: value)",
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _found(instance: object, kinds: Iterable[str]) -> str:
    """How a wrong value is shown: its kind and value; text that YAML would have read as one of
    the expected kinds (e.g. 'null', '0.5') gets a hint about Snakemake's --config, which reads
    values inside {...} or [...] as text."""
    if not isinstance(instance, str):
        return repr(instance)
    shown = f"the text {excerpt(instance)}"
    try:
        parsed = yaml.safe_load(instance)
    except yaml.YAMLError:
        return shown
    as_kind = {type(None): "null", list: "array", dict: "object", bool: "boolean",
               int: "number", float: "number", str: "string"}.get(type(parsed))  # fmt: skip
    wanted = set(kinds) | ({"number"} if "integer" in kinds else set())
    if as_kind in wanted and as_kind != "string":
        shown += (
            " (if given with --config: Snakemake reads values inside {...} or [...] as text; "
            "give this setting in a --configfile YAML file instead)"
        )
    return shown


def _bounds_text(schema: Mapping[str, object]) -> str:
    parts = []
    for name, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                       ("exclusiveMaximum", "<")):  # fmt: skip
        if name in schema:
            parts.append(f"{sign} {schema[name]}")
    return "a number " + " and ".join(parts)


def schema_problems(instance: object, schema: Mapping[str, object]) -> list[tuple[str, str]]:
    """Every problem of `instance` against the JSON `schema`, as (key path, one-line message).

    Ordered by key so the same input always reports the same first problem. An unknown key is
    reported with the closest allowed key ("did you mean"); oneOf/anyOf problems with the branch
    that came closest; a wrong kind with what was expected and what was found.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(instance),
        key=lambda e: ([str(p) for p in e.absolute_path], e.validator != "additionalProperties"),
    )
    return [_problem(e) for e in errors if e.validator not in ("if", "then", "else")]


def fill_defaults(config: dict[str, object], schema: Mapping[str, object]) -> None:
    """Fill in the schema's `default`s in `config`, in place, as `snakemake.utils.validate`
    (set_default=True) does: a draft 2020-12 validator whose `properties` keyword first sets
    each absent property that has a default (jsonschema FAQ, "Why doesn't my schema's default
    property set the default on my instance?"), then validates.

    Here on the schema already parsed by :func:`load_yaml`: Snakemake's validate re-reads the
    schema file with its pure-Python YAML loader, a third of a second of every run's start.
    Run after :func:`validate_config`, so a config reaching it is valid.
    """
    import jsonschema
    from jsonschema import validators

    properties = jsonschema.Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):  # noqa: ANN001, ANN202
        if validator.is_type(instance, "object"):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, sub["default"])
        yield from properties(validator, props, instance, subschema)

    filling = validators.extend(jsonschema.Draft202012Validator, {"properties": set_defaults})
    filling(schema).validate(config)


def _problem(first: object) -> tuple[str, str]:
    """(key path, message) of one jsonschema ValidationError."""
    if first.context:  # oneOf / anyOf: the branch whose type matched, i.e. came closest
        closer = [e for e in first.context if e.validator != "type"]
        if closer:
            first = max(closer, key=lambda e: len(e.absolute_path))
        else:
            kinds = sorted({str(e.validator_value) for e in first.context})
            return _key(first.absolute_path), (
                f"expected {' or '.join(_KIND_WORDS.get(k, k) for k in kinds)}, found "
                f"{_found(first.instance, kinds)}"
            )
    if first.validator == "additionalProperties" and isinstance(first.instance, Mapping):
        allowed = sorted((first.schema.get("properties") or {}).keys())
        extra = sorted(str(k) for k in first.instance if k not in allowed)
        if extra:
            close = difflib.get_close_matches(extra[0], allowed, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            return _key([*first.absolute_path, extra[0]]), f"unknown key{hint}"
    message = first.message
    if first.validator in _BOUNDS:
        message = f"expected {_bounds_text(first.schema)} (found {first.instance!r})"
        if first.schema.get("description"):
            message += f": {' '.join(str(first.schema['description']).split())}"
    elif first.validator == "type":
        value = first.validator_value
        kinds = [str(k) for k in (value if isinstance(value, list) else [value])]
        message = (
            f"expected {' or '.join(_KIND_WORDS.get(k, k) for k in kinds)}, found "
            f"{_found(first.instance, kinds)}"
        )
    elif first.validator == "minItems":
        count = first.validator_value
        message = (
            f"needs at least {count} entr{'y' if count == 1 else 'ies'} (found {first.instance!r})"
        )
    return _key(first.absolute_path), message


def validate_config(config: object, schema: Mapping[str, object]) -> None:
    """Check `config` against the JSON schema; raise ConfigError for the first problem."""
    if not isinstance(config, Mapping):
        raise ConfigError("the top level must be a mapping of keys (key: value)")
    problems = schema_problems(dict(config), schema)
    if problems:
        key, message = problems[0]
        raise ConfigError(message, key=key)


def input_file(value: object, key: str, root: str | Path) -> str:
    """A read-only input file named in the config, as given (absolute, or relative to `root`).

    Inputs are only read, so they may live anywhere readable (a review team's own folder);
    only outputs are confined to the project (`output_dir`). The file must exist and be a
    regular file (a FIFO or a device would block). Returns the path as written (a relative one
    in POSIX form), which is how outputs and provenance name it.
    """
    text = str(value).strip()
    if not text:
        raise ConfigError("path must not be empty", key=key)
    given = Path(text)
    shown = text if given.is_absolute() else PurePosixPath(text.replace("\\", "/")).as_posix()
    kind = special_file_kind(given if given.is_absolute() else Path(root) / shown)
    if kind == "missing":
        raise ConfigError(
            f"file '{text}' not found (a relative path is relative to the project folder)",
            key=key,
        )
    if kind:
        raise ConfigError(f"'{text}' is {kind}, not a sheet file (a CSV file)", key=key)
    return shown


def input_path(value: object, key: str) -> str:
    """A config path as a clean project-relative POSIX path; absolute paths and '..' rejected
    (used for outputs; read-only inputs go through `input_file`)."""
    text = str(value).replace("\\", "/")
    path = PurePosixPath(text)
    if not text.strip():
        raise ConfigError("path must not be empty", key=key)
    if path.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise ConfigError(f"path '{value}' must be relative to the project", key=key)
    if ".." in path.parts:
        raise ConfigError(f"path '{value}' must stay inside the project (no '..')", key=key)
    return path.as_posix()


def output_dir(value: object, key: str, root: str | Path) -> str:
    """An output directory from the config, confined to `results/` or `data/processed/`.

    Besides the checks of `input_path`, the directory (with symbolic links followed, as far as
    it exists) must lie inside one of `WRITABLE_DIRS` of the project at `root` (also followed),
    so neither a plain path nor a link inside results/ can send outputs elsewhere.
    """
    clean = input_path(value, key)
    base = Path(root).resolve()
    target = (base / clean).resolve()
    allowed = [(base / d).resolve() for d in WRITABLE_DIRS]
    if any(target == a or a in target.parents for a in allowed):
        return clean
    inside = any(
        PurePosixPath(clean) == PurePosixPath(d) or PurePosixPath(d) in PurePosixPath(clean).parents
        for d in WRITABLE_DIRS
    )
    if inside:  # lexically inside, but a symbolic link leads elsewhere
        raise ConfigError(
            f"path '{value}' leads outside {' and '.join(d + '/' for d in WRITABLE_DIRS)} "
            f"through a symbolic link (to {target})",
            key=key,
        )
    raise ConfigError(
        f"path '{value}' must be inside {' or '.join(d + '/' for d in WRITABLE_DIRS)} "
        "(outputs are written only there)",
        key=key,
    )


_NULL_TEXT = ("null", "~", "none")


def normalise_command_line(config: dict) -> None:
    """Undo what Snakemake's --config does to nested values it reads as text, where the text
    can only mean null: `--config subgroups="{trd: null}"` gives `{'trd': 'null'}` (Snakemake
    parses nested values with YAML's BaseLoader). A subgroup's levels are a list or null, so
    the text 'null' / '~' there is null. Changes `config` in place."""
    subgroups = config.get("subgroups")
    if isinstance(subgroups, dict):
        for column, levels in subgroups.items():
            if isinstance(levels, str) and levels.strip().lower() in _NULL_TEXT:
                subgroups[column] = None


def _default(schema: Mapping[str, object], key: str) -> object:
    props = schema.get("properties") or {}
    return (props.get(key) or {}).get("default")  # type: ignore[union-attr]


def _optional_file(value: object, existing: Callable[[object, str], str]) -> str | None:
    """`risk_of_bias`: a sheet, or None for YAML null and for 'null'/'none' given on the
    command line (`--config risk_of_bias=null` arrives as the string 'null')."""
    if value is None or str(value).strip().lower() in ("null", "none", "~"):
        return None
    return existing(value, "risk_of_bias")


def time_response_in_hours(
    cfg: Mapping[str, object] | None, unit: str, windows: Mapping[str, Sequence]
) -> dict[str, object]:
    """Config `time_response` with its times (`knots`, `predict_at`, `test_at`, given in
    config `time_unit`) converted to hours, the unit of the model.

    Absent times take the data's windows (in hours): `predict_at` null = no times besides the
    windows' nominal times (which the summary always adds), `test_at` null = the last window's
    nominal time. Other keys are unchanged.
    """
    out = dict(cfg or {})
    factor = unit_hours(unit)

    def hours(value: object) -> object:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and factor != 1.0:
            return float(value) * factor
        return value

    if out.get("knots") is not None:
        out["knots"] = [hours(v) for v in out["knots"]]  # type: ignore[union-attr]
    if out.get("predict_at") is not None:
        out["predict_at"] = [hours(v) for v in out["predict_at"]]  # type: ignore[union-attr]
    else:
        out["predict_at"] = []
    if out.get("test_at") is not None:
        out["test_at"] = hours(out["test_at"])
    else:
        out["test_at"] = float(max(windows["nominal"]))
    return out


def check_config(
    config: Mapping[str, object], schema: Mapping[str, object], root: str | Path
) -> dict[str, object]:
    """Everything the workflow checks in its configuration before any rule runs.

    Schema (`validate_config`), input files (`input_file`: anywhere readable, must exist;
    `published` and `claims_file` may be null = none configured), output directories
    confined to results/ and data/processed/ of the project at `root` (`output_dir`), and the
    time windows (`windows.window_specs`: config `windows` converted from `time_unit` to hours,
    or, for `windows: null`, one window per time the sheets report, read with
    `ingest.read_sheets` and the sheet options). Returns the clean paths, the windows
    (`window_specs`: list in hours; `windows`: its table), `time_unit` and `time_response` in
    hours; raises ConfigError naming the key for the first problem. Absent keys take the
    schema default.
    """
    if isinstance(config, Mapping) and config.get("studies") is None:
        raise ConfigError(
            "set `studies`: the extraction sheet(s) to analyse, e.g. "
            "--config studies=data/raw/my_sheet.csv or `studies: [a.csv, b.csv]` in a "
            "--configfile (the shipped ketamine analysis: --configfile config/ketamine.yaml)",
            key="studies",
        )
    validate_config(config, schema)

    def get(key: str) -> object:
        return config[key] if key in config else _default(schema, key)

    def existing(value: object, key: str) -> str:
        return input_file(value, key, root)

    def optional_input(value: object, key: str) -> str | None:
        # YAML null, or 'null'/'none' text from the command line: none configured
        if value is None or str(value).strip().lower() in _NULL_TEXT:
            return None
        return existing(value, key)

    studies = get("studies")
    sheets = [
        existing(p, "studies")
        for p in ([studies] if isinstance(studies, str) else list(studies))  # type: ignore[arg-type]
    ]
    unit = str(get("time_unit") or "hours")
    spec = get("windows")
    times = None
    if spec is None:  # windows derived from the data: every time the sheets report
        from timecourse_meta.pipeline.ingest import read_sheets

        times = read_sheets(
            sheets, root=root, csv_separator=str(get("csv_separator")),
            decimal=str(get("decimal")), time_unit=unit,
            control_arms=list(get("control_arms") or []),  # type: ignore[call-overload]
            stat_kind_default=get("stat_kind_default"),  # type: ignore[arg-type]
        )["time_hours"].to_numpy(dtype=float)  # fmt: skip
    specs = window_specs(spec, unit, times)  # type: ignore[arg-type]
    windows = check_windows(specs)
    return {
        "studies": sheets,
        "published": optional_input(get("published"), "published"),
        "claims_file": optional_input(get("claims_file"), "claims_file"),
        "processed_dir": output_dir(get("processed_dir"), "processed_dir", root),
        "results_dir": output_dir(get("results_dir"), "results_dir", root),
        "time_unit": unit,
        "window_specs": specs,
        "windows": windows,
        "time_response": time_response_in_hours(
            get("time_response"),  # type: ignore[arg-type]
            unit,
            windows,
        ),
        "risk_of_bias": _optional_file(get("risk_of_bias"), existing),
    }
