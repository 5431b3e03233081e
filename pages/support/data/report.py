"""The Data page's report on a scan: class balance, image sizes, skipped files, duplicates and
conflicts, near-duplicates, image quality, colour modes and formats, sample images. Each function
draws one tab."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.data.scan import ScanResult
from pages.support.shared import charts, keys, loaders
from pages.support.shared.formatting import as_text, chart_text, code, md
from pages.support.shared.widgets import paged_table

# Imbalance rule: warn when the smaller class has fewer than 40% as many usable images as the larger.
IMBALANCE_RATIO = 0.4
THUMB = 96
GROUPS_SHOWN = 12  # duplicate groups shown with thumbnails, per kind
GROUP_COLUMNS = 3
GROUP_THUMBS = 3  # thumbnails per group
SAMPLE_THUMBS = 12  # images per class in "Sample images", drawn with the split seed


def display_roots(scan: ScanResult) -> list[str]:
    """Where shown paths start: the dataset folder, or the class folders' parents (so the class shows)."""
    return [str(Path(r).parent) if scan.layout.kind == "two-folders" else r for r in scan.layout.roots]


def short(path: str, roots: list[str]) -> str:
    for r in roots:
        if path.startswith(r.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, r)
    return path


def class_balance(scan: ScanResult) -> None:
    names, found, usable = scan.class_names, scan.class_counts(), scan.class_counts(usable_only=True)
    st.plotly_chart(charts.class_balance([chart_text(n) for n in names], found, usable), width="stretch")
    small, big = sorted(usable)
    st.caption(f"Rule: a warning appears when the smaller class has fewer than {IMBALANCE_RATIO:.0%} as many "
               "usable images as the larger.")
    if big and small < IMBALANCE_RATIO * big:
        lo = md(names[usable.index(small)])
        st.warning(
            f"The classes are imbalanced: {lo} has {small} usable images, {small / big:.0%} of the other "
            f"class's {big}. Training weights the loss by the class balance, but more {lo} images help most.",
            icon=":material/balance:",
        )


def image_sizes(scan: ScanResult) -> None:
    names = scan.class_names
    names = [chart_text(n) for n in names]
    df = pd.DataFrame([(r.width, r.height, names[r.label], chart_text(os.path.basename(r.path)))
                       for r in scan.images], columns=["width", "height", "class", "file"])  # fmt: skip
    st.plotly_chart(charts.image_sizes(df, names), width="stretch")
    if len(df):
        st.caption(
            f"Width {df.width.min()}..{df.width.max()} px, height {df.height.min()}..{df.height.max()} px. "
            "Every image is resized to the model's square input size; very different shapes get squashed."
        )


def skipped_files(scan: ScanResult) -> None:
    if not scan.skipped:
        st.success("Every file is a usable image.", icon=":material/check_circle:")
        return
    roots = display_roots(scan)
    paged_table(scan.skipped, lambda s: (short(s.path, roots), s.reason), ["file", "reason"],
                keys.DATA_SKIPPED_PAGE, "skipped.csv")


def duplicates(scan: ScanResult) -> None:
    label_of = {r.path: scan.class_names[r.label] for r in scan.images}
    roots = display_roots(scan)
    conflict_set = {p for g in scan.conflicts for p in g}
    within = [g for g in scan.duplicates if g[0] not in conflict_set]
    if not scan.duplicates:
        st.success("No duplicate files.", icon=":material/check_circle:")
    if scan.conflicts:
        st.markdown(f"**Label conflicts** ({len(scan.conflicts)}): the same image in both classes. "
                    "Every copy is left out of training.")
        _groups(scan.conflicts, True, label_of, roots)
    if within:
        st.markdown(f"**Duplicates within a class** ({len(within)} group{'' if len(within) == 1 else 's'}): "
                    "one copy is kept, the others are left out so they cannot end up in both train and test.")
        _groups(within, False, label_of, roots)
    if len(scan.conflicts) > GROUPS_SHOWN or len(within) > GROUPS_SHOWN:
        st.caption(
            f"Showing the first {GROUPS_SHOWN} groups of each kind ({len(scan.conflicts):,} conflict and "
            f"{len(within):,} duplicate groups in all); the list below has every file they leave out."
        )
    if scan.excluded:
        with st.expander(f"Left out of training ({len(scan.excluded):,} files)"):
            paged_table(sorted(scan.excluded.items()), lambda pr: (short(pr[0], roots), pr[1]),
                        ["file", "reason"], keys.DATA_EXCLUDED_PAGE, "left_out.csv")


def _groups(groups: list[list[str]], conflict: bool, label_of: dict[str, str], roots: list[str]) -> None:
    cols = st.columns(GROUP_COLUMNS)
    for i, g in enumerate(groups[:GROUPS_SHOWN]):
        with cols[i % GROUP_COLUMNS]:
            _group(g, conflict, label_of, roots)


def _group(paths: list[str], conflict: bool, label_of: dict[str, str], roots: list[str]) -> None:
    """One group of identical files: a few thumbnails, what happens to each copy, their paths."""
    shown = paths[:GROUP_THUMBS]
    images, captions = [], []
    for i, p in enumerate(shown):
        if (t := loaders.thumbnail(p, THUMB)) is not None:
            images.append(t)
            captions.append(md(label_of.get(p, "?")) if conflict else ("kept" if i == 0 else "left out"))
    with st.container(border=True):
        classes = sorted({label_of.get(p, "?") for p in paths})
        title = " vs ".join(map(md, classes)) if conflict else md(classes[0])
        st.markdown(f"**{title}** · {len(paths)} copies")
        if images:
            st.image(images, caption=captions, width=THUMB)
        more = f"  \n... and {len(paths) - len(shown)} more" if len(paths) > len(shown) else ""
        st.caption("  \n".join(code(short(p, roots)) for p in shown) + more)


def near_duplicates(scan: ScanResult, split: pd.DataFrame) -> None:
    """The same photo in other files (resized, re-encoded, cropped, re-exposed, mirrored): each group is
    kept on one side of `split` (the page's split table); groups across classes first."""
    groups = sorted(scan.near_duplicates, key=lambda g: not g.label_conflict)
    if not groups:
        st.success("No near-duplicates: no photo is in two files.", icon=":material/check_circle:")
        return
    n_conflicts = sum(g.label_conflict for g in groups)
    st.caption(f"{len(groups):,} group(s) of files that show the same photo; {n_conflicts:,} across the two "
               "classes (a label conflict: check which label is right). Each group stays whole in train, "
               "val or test, so the test never scores a photo that training saw. Distance: differing bits "
               "of 64 in the perceptual hash (0: identical to the eye).")  # fmt: skip
    where = dict(zip(split["path"], split["split"]))
    roots = display_roots(scan)
    cols = st.columns(GROUP_COLUMNS)
    for i, g in enumerate(groups[:GROUPS_SHOWN]):
        with cols[i % GROUP_COLUMNS], st.container(border=True):
            side = {where.get(p, "left out") for p in g.paths}
            title = " vs ".join(map(md, sorted(set(g.classes))))
            title += " · label conflict" if g.label_conflict else ""
            st.markdown(f"**{title}** · {len(g.paths)} files · {', '.join(sorted(side))}")
            thumbs = [(t, f"{md(c)} · {d}") for p, c, d in zip(g.paths[:GROUP_THUMBS], g.classes, g.distances)
                      if (t := loaders.thumbnail(p, THUMB)) is not None]  # fmt: skip
            if thumbs:
                st.image([t for t, _ in thumbs], caption=[c for _, c in thumbs], width=THUMB)
            st.caption("  \n".join(code(short(p, roots)) for p in g.paths[:GROUP_THUMBS]))
    if len(groups) > GROUPS_SHOWN:
        st.caption(f"Showing {GROUPS_SHOWN} of {len(groups):,} groups; `bincls scan --json` lists them all.")


def near_duplicates_of_current_split(scan: ScanResult) -> None:
    """The near-duplicate groups with the side of the split each group is on (the split below)."""
    try:
        data = loaders.current_data()
    except BinclsError as exc:
        st.caption(f"The groups show with the split, once the data can be split: {as_text(exc)}")
        return
    near_duplicates(scan, data.split)


def image_quality(scan: ScanResult) -> None:
    """Blurry, very dark or bright, nearly blank, extreme-shape and very small images: warnings only."""
    if not scan.quality:
        st.success("No image-quality warnings.", icon=":material/check_circle:")
        return
    counts = Counter(q.check for q in scan.quality)
    st.caption(", ".join(f"{n:,} {c}" for c, n in counts.most_common()) + ". These are warnings: every one "
               "of these images still trains unless you exclude it in the label review below.")
    roots = display_roots(scan)
    paged_table(scan.quality, lambda q: (short(q.path, roots), q.check, q.reason),
                ["file", "check", "reason"], keys.DATA_QUALITY_PAGE, "quality.csv")  # fmt: skip


def modes_and_formats(scan: ScanResult) -> None:
    c1, c2, c3 = st.columns(3, gap="large")
    c1.markdown("**Colour modes** (as stored)")
    c1.dataframe(pd.DataFrame(sorted(scan.mode_counts().items()), columns=["mode", "images"]),
                 hide_index=True, width="stretch")
    c2.markdown("**File formats**")
    c2.dataframe(pd.DataFrame(sorted(scan.format_counts().items()), columns=["format", "images"]),
                 hide_index=True, width="stretch")
    c3.markdown("**Channel statistics** (RGB, 0..1)")
    c3.dataframe(
        pd.DataFrame({"mean": scan.channel_mean, "std": scan.channel_std}, index=["R", "G", "B"]).round(3),
        width="stretch",
    )
    st.caption("Every image is converted to 8-bit RGB the same way for training and prediction "
               "(transparency on white, 16-bit scaled, EXIF rotation applied).")


def sample_images(scan: ScanResult, seed: int) -> None:
    """A few usable images per class, drawn at random with `seed`: a look at the data, whatever its size."""
    st.caption("Usable images picked at random with the split's seed (change it in 3. below for others).")
    usable = scan.usable
    for i, name in enumerate(scan.class_names):
        recs = [r for r in usable if r.label == i]
        picked = sorted(random.Random(seed).sample(range(len(recs)), min(SAMPLE_THUMBS, len(recs))))
        images, captions = [], []
        for k in picked:
            if (t := loaders.thumbnail(recs[k].path, THUMB)) is not None:
                images.append(t)
                captions.append(md(os.path.basename(recs[k].path)))
        st.markdown(f"**{md(name)}**: {len(picked)} of {len(recs):,} usable images")
        if images:
            st.image(images, caption=captions, width=THUMB)
