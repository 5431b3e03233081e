"""The pages' helpers, sorted by page: one folder per page (`data/`, `train/`, `evaluate/`, `runs/`)
holds what only that page uses; `shared/` holds what two or more pages use (session keys and state,
cached engine calls, messages, formatting, widgets, charts, the sidebar, the export section).

A subfolder of pages/, so Streamlit never takes these modules for pages. tests/test_project.py checks
that a page's folder is used by that page alone.
"""
