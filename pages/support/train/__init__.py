"""Helpers of the Train page only: the settings (from the schema), the form, the run panel, live charts."""
