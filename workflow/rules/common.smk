# Configuration checks and the paths shared by all rules.

from pathlib import PurePosixPath

from snakemake.utils import validate

from timecourse_meta.errors import ConfigError
from timecourse_meta.windows import parse_windows


def check_config(schema_file):
    """Validate `config` against the schema; the first problem as a one-line ConfigError."""
    import jsonschema
    import yaml

    with open(schema_file, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        first = errors[0]
        key = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ConfigError(first.message, key=key)
    validate(config, schema=schema_file)  # fills in the schema's defaults


check_config(workflow.source_path("../../config/schema/config.schema.yaml"))


def project_path(value, key):
    """A config path as a clean project-relative POSIX path; absolute paths and '..' rejected."""
    text = str(value).replace("\\", "/")
    path = PurePosixPath(text)
    if path.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise ConfigError(f"path '{value}' must be relative to the project", key=key)
    if ".." in path.parts:
        raise ConfigError(f"path '{value}' must stay inside the project (no '..')", key=key)
    return path.as_posix()


STUDIES = [
    project_path(p, "studies")
    for p in ([config["studies"]] if isinstance(config["studies"], str) else config["studies"])
]
PUBLISHED = project_path(config["published"], "published")
CLAIMS_FILE = project_path(config["claims_file"], "claims_file")
PROC = project_path(config["processed_dir"], "processed_dir")
RES = project_path(config["results_dir"], "results_dir")
TABLES = f"{RES}/tables"
FIGURES = f"{RES}/figures"
LOGS = "logs"
WINDOWS = parse_windows(config["windows"])
TIMEPOINTS = list(WINDOWS["label"])


def final_outputs():
    """Every file the workflow promises (the `all` target)."""
    tables = [
        "exclusions.csv",
        "row_accounting.csv",
        "window_choices.csv",
        "effects.csv",
        "pooled_by_timepoint.csv",
        "pooled_by_timepoint.md",
        "subgroups.csv",
        "sensitivity.csv",
        "proportions.csv",
        "pooled_proportions.csv",
        "published_comparison.csv",
        "published_comparison.md",
        "claims.csv",
        "claims.md",
        "provenance.csv",
    ]
    figures = [f"forest_{tp}.{ext}" for tp in TIMEPOINTS for ext in ("png", "pdf")]
    figures += ["timecourse.png", "timecourse.pdf"]
    return (
        [f"{TABLES}/{t}" for t in tables]
        + [f"{FIGURES}/{f}" for f in figures]
        + [f"{RES}/software_versions.txt"]
    )
