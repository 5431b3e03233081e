"""What two or more pages use: keys, state, loaders, messages, formatting, widgets, charts, the sidebar."""
