"""Dagster assets, checks, jobs and schedules of the pipeline."""
