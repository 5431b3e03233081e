"""Run in a fresh process by the decode tests, so that a hang, a crash or a memory peak is this process's
own and cannot take the test session with it.

    python tests/decode_child.py fuzz FILE...    one JSON line per file: what each opener path did
    python tests/decode_child.py peak FILE...    one JSON line per file: measured peak and the cost model
    python tests/decode_child.py scan BUDGET_MB FOLDER...   scan the folders, report the peak

Before each file "start <path>" is printed and flushed, so a parent that times out knows which file hung.
"""

from __future__ import annotations

import ctypes
import gc
import json
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bincls.data import decode_memory  # noqa: E402
from bincls.data.images import ImageProblem, _opened, inspect_file, load_rgb  # noqa: E402

MiB = 2**20


def rss_peak() -> int:
    """This process's own peak resident memory (VmHWM), in bytes."""
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def rss_now() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def reset_peak() -> int:
    """Give freed memory back to the system, restart the peak from the current size; return that size.

    Without the trim, memory freed by the previous decode stays in this process and is reused by the
    next one, which would then look smaller than it is."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return rss_now()


def outcome(call, *args, **kwargs) -> str:
    try:
        call(*args, **kwargs)
        return "ok"
    except ImageProblem as p:
        return "problem: " + p.reason
    except BaseException as exc:  # noqa: BLE001 - exactly what the parent looks for
        return f"ESCAPED {type(exc).__name__}: {str(exc)[:200]}"


def fuzz(paths: list[str]) -> None:
    # Address space limited: a decode that the cost model let through and that allocates without bound
    # fails here (as MemoryError, which would be reported as "ran out of memory") instead of swapping.
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
    for path in paths:
        print("start", path, flush=True)
        data = Path(path).read_bytes()
        started = time.monotonic()
        result = {
            "path": path,
            "inspect": outcome(inspect_file, path),
            "small": outcome(load_rgb, path, max_side=32),
            "full": outcome(load_rgb, path),
            "bytes": outcome(load_rgb, data, max_side=32, name="upload"),
        }
        result["seconds"] = time.monotonic() - started
        print(json.dumps(result), flush=True)


def peak(paths: list[str]) -> None:
    for path in paths:
        print("start", path, flush=True)
        for how in ("full", "inspect"):
            side = None if how == "full" else 64
            with _opened(path, path) as (im, _, size):
                full = im.size
                if side and im.format in ("JPEG", "MPO"):
                    w, h = full
                    scale = max(side / min(w, h), 1 / 8)
                    im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
                cost = decode_memory.decode_cost(im, full, size)
            base = reset_peak()
            result = outcome(inspect_file, path) if how == "inspect" else outcome(load_rgb, path)
            print(json.dumps({"path": path, "how": how, "peak": rss_peak() - base, "cost": cost,
                              "result": result}), flush=True)  # fmt: skip


def scan(budget_mb: int, folders: list[str]) -> None:
    from bincls.data.dataset import scan_folders

    decode_memory.DECODE_BUDGET.capacity = budget_mb * MiB
    base = reset_peak()
    started = time.monotonic()
    result = scan_folders(folders, use_cache=False)
    print(json.dumps({
        "peak": rss_peak() - base, "budget_peak": decode_memory.DECODE_BUDGET.peak,
        "seconds": time.monotonic() - started, "images": len(result.images),
        "skipped": {s.path: s.reason for s in result.skipped},
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "fuzz":
        fuzz(args)
    elif command == "peak":
        peak(args)
    elif command == "scan":
        scan(int(args[0]), args[1:])
