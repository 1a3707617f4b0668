"""The leaderboard: result bundles (``bundle``), their validation and re-scoring (``validate``),
and the static site built from the accepted ones (``site``)."""
