"""alter-pipeline: a data platform and event bridge for the Alter Product Customizer API."""

__version__ = "0.1.0"
