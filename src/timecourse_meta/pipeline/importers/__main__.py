"""Command line of the importers: ``python -m timecourse_meta.pipeline.importers metapsy IN OUT``.

Reads IN (CSV in the foreign layout), writes OUT (a sheet of docs/extraction_sheet.md) and, when
some rows could not be imported, ``OUT`` with ``.not_imported.csv`` appended to its stem (each row
with its reason). Problems are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.pipeline.importers.metapsy import metapsy_to_precomputed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m timecourse_meta.pipeline.importers")
    sub = parser.add_subparsers(dest="layout", required=True)
    meta = sub.add_parser("metapsy", help="Metapsy comparison-level CSV -> minimal yi/sei sheet")
    meta.add_argument("input", type=Path)
    meta.add_argument("output", type=Path)
    meta.add_argument(
        "--benefit",
        required=True,
        choices=["positive", "negative"],
        help="sign of .g that favours arm 1 (the standard does not say; check the database)",
    )
    meta.add_argument("--source", default="", help="database name, version or DOI")
    args = parser.parse_args(argv)
    try:
        data = pd.read_csv(args.input, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        sheet, skipped = metapsy_to_precomputed(
            data, benefit=args.benefit, source=args.source, name=args.input.as_posix()
        )
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        print(f"{args.input}: cannot be read as CSV ({err})", file=sys.stderr)
        return 1
    except TimecourseMetaError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    sheet.to_csv(args.output, index=False)
    print(f"{args.output}: {len(sheet)} rows", file=sys.stderr)
    if len(skipped):
        other = args.output.with_name(args.output.stem + ".not_imported.csv")
        skipped.to_csv(other, index=False)
        print(f"{other}: {len(skipped)} rows not imported, each with its reason", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
