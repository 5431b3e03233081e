"""Helpers of the Data page only: choosing the data, the report on it, the folder browser, the label audit."""
