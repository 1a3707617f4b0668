"""Answer extraction, verdicts and metrics."""

from taskmem_bench.scoring.extract import Extraction, extract_choice
from taskmem_bench.scoring.metrics import Scores, score, score_by, score_rows

__all__ = ["Extraction", "Scores", "extract_choice", "score", "score_by", "score_rows"]
