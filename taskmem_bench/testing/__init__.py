"""Helpers for testing policies and the harness: index-coded synthetic videos."""
