"""The scan as the command line prints it: a few lines a person reads, --json for the rest."""

from __future__ import annotations

from collections import Counter


def format_scan(scan, counts: dict[str, dict[str, int]]) -> str:
    lines = [f"Layout: {scan.layout.kind}"]
    total, usable = scan.class_counts(), scan.class_counts(usable_only=True)
    lines.append(f"{'class':<20} {'images':>7} {'usable':>7}  folder")
    for i, c in enumerate(scan.layout.classes):
        folders = ", ".join(f for f, _ in c.folders)
        lines.append(f"{c.name:<20} {total[i]:>7} {usable[i]:>7}  {folders}")
    lines.append(f"{'split':<20} " + " ".join(f"{n:>12}" for n in scan.class_names))
    for split, per in counts.items():
        lines.append(f"{split:<20} " + " ".join(f"{per[n]:>12}" for n in scan.class_names))
    lines.append(f"Skipped files: {len(scan.skipped)}")
    for reason, n in Counter(s.reason for s in scan.skipped).most_common():
        lines.append(f"  {n:>5}  {reason}")
    for s in scan.skipped[:20]:
        lines.append(f"    {s.path}: {s.reason}")
    if len(scan.skipped) > 20:
        lines.append(f"    ... and {len(scan.skipped) - 20} more (--json lists all)")
    lines.append(f"Duplicate groups: {len(scan.duplicates)}, label conflicts: {len(scan.conflicts)}")
    for group in scan.conflicts[:10]:
        more = f" == ... and {len(group) - 3} more" if len(group) > 3 else ""
        lines.append("  conflict: " + " == ".join(group[:3]) + more)
    lines.append(_near_duplicates_line(scan.near_duplicates))
    lines.append(_quality_line(scan.quality))
    lines.extend(f"Note: {n}" for n in scan.notes)
    return "\n".join(lines)


def _near_duplicates_line(groups) -> str:
    conflicts = sum(g.label_conflict for g in groups)
    files = sum(len(g.paths) for g in groups)
    return (f"Near-duplicate groups: {len(groups)} ({files} files; each kept on one side of the split), "
            f"across classes: {conflicts} (--json lists them)")  # fmt: skip


def _quality_line(issues) -> str:
    by_check = Counter(q.check for q in issues)
    if not issues:
        return "Quality warnings: none"
    found = ", ".join(f"{by_check[c]} {c}" for c in sorted(by_check))
    files = len({q.path for q in issues})
    return f"Quality warnings: {found} ({files} files; they still train; --json lists them)"
