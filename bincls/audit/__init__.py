"""The label audit: likely wrong labels, outliers and near-duplicates, and the user's decisions on them.

`audit(paths)` ranks the images a user should look at; `bincls.data.overlay` keeps what they decided
(keep, exclude, relabel) in bincls' own folder, and training honours it. The user's files are never touched.
"""
