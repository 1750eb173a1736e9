"""What the Dagster instance loads from this package (named in dagster.yaml): the run launcher and
the storage classes."""
