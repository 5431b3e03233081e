"""What the pages share, one job per module: `keys` (every session key), `state` (session defaults and
the run being followed), `loaders` (cached engine calls), `messages` (one way to show a message or stop),
`formatting`, `widgets` (paged table, galleries, run picker), `folder_browser`, `sidebar`, and the plotly
builders in one style (`charts`, `evaluation_charts`). Page-specific pieces too long for a page script:
`data_choice`, `data_report`, `train_settings`, `train_panel`, `evaluate_views`.

A subfolder of pages/, so Streamlit never takes these modules for pages.
"""
