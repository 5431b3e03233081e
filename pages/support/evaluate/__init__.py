"""Helpers of the Evaluate page only: its views and metric charts."""
