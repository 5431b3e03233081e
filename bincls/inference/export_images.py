"""Which images an export is checked and calibrated on: the run's held-out images for the parity check,
its training images for INT8 calibration, both classes, and never an image whose header claims more
than `CALIBRATION_MAX_PIXELS` (it is passed over unread: decompression bombs among the training images
took calibration 208 s and 3.1 GB, and two among the validation images took an export to 3.9 GB)."""

from __future__ import annotations

import numpy as np

from bincls.data.images import ImageProblem, load_rgb
from bincls.errors import BinclsError

# 50 MP is beyond any camera's photos but for medium format; a 120 MP decompression bomb decodes for
# seconds at 1 GiB, and the export's own pixel graph resizes it at several bytes a pixel.
CALIBRATION_MAX_PIXELS = 50_000_000


def _spread(items: list, n: int) -> list:
    """n items evenly spread over the list (it is sorted by class, so both classes are in)."""
    if len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n)]


def verification_images(run, n: int) -> tuple[list[str], list[int] | None, str]:
    """The images to check an export on: (paths, labels or None, where they come from)."""
    return checked_images(run, n)[:3]


def checked_images(run, n: int) -> tuple[list[str], list[int] | None, str, list[str]]:
    """The run's test and validation images (never trained on; both, so that INT8 is checked on 100 or more
    where the run has them), else the shipped sample (no labels for this model); with the images passed
    over for their size ("path: reason", for the report's `skipped`)."""
    if run is not None and run.split_path.exists():
        from bincls.data.split import load_split

        table = load_split(run.split_path).drop_duplicates("path")
        held_out = table[table["split"].isin(["test", "val"])].sort_values("label", kind="stable")
        if len(held_out):
            picked = _spread(list(zip(held_out["path"], held_out["label"])), n)
            splits = [s for s in ("test", "val") if (held_out["split"] == s).any()]
            source = " and ".join(splits) + (" splits" if len(splits) > 1 else " split")
            kept, passed_over = _not_too_large(picked)
            return [p for p, _ in kept], [int(y) for _, y in kept], source, passed_over
    from bincls.data.images import is_junk_name
    from bincls.paths import SAMPLE_DATA

    files = sorted(str(p) for p in SAMPLE_DATA.rglob("*") if p.is_file() and not is_junk_name(p.name))
    return _spread(files, n), None, "shipped sample images (not this model's classes)", []


def _not_too_large(picked: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[str]]:
    kept, passed_over = [], []
    for path, label in picked:
        try:
            large = _header_pixels(path) > CALIBRATION_MAX_PIXELS
        except ImageProblem:
            large = False  # unreadable: the check itself lists it with its reason
        if large:
            passed_over.append(f"{path}: over {CALIBRATION_MAX_PIXELS:,} pixels (passed over, not decoded)")
        else:
            kept.append((path, label))
    return kept, passed_over


def calibration_tensors(run, predictor) -> list[np.ndarray]:
    """Normalized training images [1, 3, S, S] of the run, both classes, for INT8 calibration.

    One image at a time, each decode within the shared decode budget; an image whose header claims more
    than `CALIBRATION_MAX_PIXELS` is passed over unread (calibration wants the photos the model will
    see; a training folder of decompression bombs took 208 s and 3.1 GB), and so is one that cannot be
    read or does not fit in memory now."""
    from bincls.data.split import load_split
    from bincls.inference.quantize import CALIBRATION_IMAGES

    table = load_split(run.split_path).drop_duplicates("path")
    out, passed_over = [], 0
    for path in _spread(list(table[table["split"] == "train"]["path"]), CALIBRATION_IMAGES):
        try:
            if _header_pixels(path) > CALIBRATION_MAX_PIXELS:
                passed_over += 1
                continue
            out.append(predictor.transform(load_rgb(path)).unsqueeze(0).numpy())
        except (ImageProblem, MemoryError):
            continue  # a training file that went away, changed or is too large now: calibrate on the others
    if not out:
        extra = f" ({passed_over} over {CALIBRATION_MAX_PIXELS:,} pixels)" if passed_over else ""
        raise BinclsError(f"No training image of {run.path} can be read{extra}: INT8 cannot be calibrated.")
    return out


def _header_pixels(path: str) -> int:
    """Width x height as the file's header claims them (nothing decoded); `ImageProblem` when unreadable."""
    from PIL import Image

    from bincls.data.file_access import FileProblem, open_regular
    from bincls.data.images import ACCEPTED_FORMATS

    try:  # only the plugins of the formats bincls reads ever parse it (MPO comes through JPEG's)
        with open_regular(path) as fp, Image.open(fp, formats=sorted(ACCEPTED_FORMATS - {"MPO"})) as im:
            return im.size[0] * im.size[1]
    except FileProblem as exc:
        raise ImageProblem(path, exc.reason) from None
    except Exception as exc:  # noqa: BLE001 - a header Pillow cannot read: the decode says why, or skips it
        raise ImageProblem(path, f"cannot be read ({type(exc).__name__})") from None
