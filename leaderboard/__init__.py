"""Static leaderboard builder (lands in a later issue)."""
