"""`python -m alter_pipeline.cli`: the same as the `alter-pipeline` console script."""

from alter_pipeline.cli.app import main

main()
