"""Helpers of the Runs page only: the table of runs."""
