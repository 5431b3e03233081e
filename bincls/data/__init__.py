"""From the files a user points at to batches: images, folder layouts, scan, split, datasets, feeds.

Modules in the order data flows through them: `images` (one file), `folder_layout` (what was pointed
at), `scan` (every file checked), `split` (train/val/test), `dataset` (scan + split, the Dataset),
`transforms` (train/eval presets), `decode_cache` (decoded once), `batch_feeds` (what the loop eats).
`uploads` and `data_root` keep the app's own uploads and the folders it may read; `browse` lists
subfolders with their image counts (no decoding) and fingerprints folders for caches.
"""
