"""Importers: other tools' data layouts turned into this project's minimal sheets.

Each importer is a pure function from a DataFrame in the foreign layout to a frame in one of the
sheet formats of docs/extraction_sheet.md, plus the rows it could not import with the reason
(nothing is dropped silently). Command line: ``python -m timecourse_meta.pipeline.importers
metapsy IN.csv OUT.csv --benefit negative``.
"""
