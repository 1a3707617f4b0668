"""Baseline memorization policies and the controls (blind, oracle)."""
