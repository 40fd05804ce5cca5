"""The workflow stages, in data-flow order: config, ingest, windows, pooling, time-course
tables, claims; tables holds the output writers every stage shares."""
