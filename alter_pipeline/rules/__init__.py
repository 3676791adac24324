"""Declarative status rules: a YAML file of conditions over the warehouse, applied safely.

parse.py reads and validates the file (model.py holds the result), compile.py turns each rule
into one DuckDB query, evaluate.py re-checks a single order in Python and explains verdicts,
transitions.py holds the allowed status moves, apply.py plans and applies a run with the
ledger (ledger.py) and the audit table (audit.py); `alter-pipeline rules` is
alter_pipeline/cli/rules.py.
"""

from alter_pipeline.rules.model import Rule, RuleSet
from alter_pipeline.rules.parse import RulesError, load_rules, parse_rules

__all__ = ["Rule", "RuleSet", "RulesError", "load_rules", "parse_rules"]
