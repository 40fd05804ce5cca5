"""Models (metafor rma.uni / rma.mv): tau² estimators, random-effects fits and
meta-regression, the batch engine, and the multivariate time-course model."""
