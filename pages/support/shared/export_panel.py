"""The run as a file that runs anywhere, on the Predict and Evaluate pages alike: export to ONNX (fp32 or
INT8) with the engine's check against PyTorch, its parity report, downloads, and the command that
serves the run over HTTP.

The files go beside the run's checkpoint (best.onnx, best.int8.onnx: bincls's own runs folder), where
`bincls export RUN` puts them; an export is shown only while it still gives `bincls predict`'s answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.data.browse import file_stamp
from bincls.inference.export import current_export, default_output, export_onnx
from bincls.inference.web_export import current_web_export, export_web, web_zip_bytes
from bincls.serve.server import serve_command
from pages.support.shared.commands import command, example_image, show_command

PRECISIONS = {
    "fp32": "fp32 (the PyTorch model's answers)",
    "int8": "INT8 (about 3x smaller; labels checked)",
}


# Keyed by the stamps of every file the answer depends on: hashing a large checkpoint on each rerun
# would slow every click on the page.
@st.cache_data(show_spinner=False, max_entries=32)
def _current(ckpt: str, int8: bool, stamps: tuple) -> tuple[str, dict] | None:
    found = current_export(ckpt, int8)
    return None if found is None else (str(found[0]), found[1])


def current(run, ckpt: Path, int8: bool) -> tuple[Path, dict] | None:
    onnx = default_output(ckpt, "pixels", int8)
    meta = onnx.with_name(onnx.name + ".json")
    stamps = tuple(file_stamp(p) for p in (ckpt, onnx, meta, run.path / "config.json"))
    found = _current(str(ckpt), int8, stamps)
    return None if found is None else (Path(found[0]), found[1])


def export_panel(run, ckpt: Path, key: str) -> None:
    """The export section for `run` (its checkpoint `ckpt`); `key` prefixes the widget keys."""
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    precision = left.radio(
        "Precision", list(PRECISIONS), format_func=PRECISIONS.get, horizontal=True, key=f"{key}_precision",
        help="INT8 quantizes the convolutions (calibrated on the run's training images): about 3x smaller; "
             "faster only on CPUs with fast INT8 instructions (the check below says whether it was, here); "
             "probabilities move by a few hundredths; the export is refused if it changes more than 2% of "
             "the labels or costs accuracy.",
    )  # fmt: skip
    int8 = precision == "int8"
    found = current(run, ckpt, int8)
    if found is None:
        right.caption("Not exported yet, or the model or its saved threshold changed since.")
        if st.button(f"Export to ONNX ({'INT8' if int8 else 'fp32'})", key=f"{key}_export", type="primary",
                     icon=":material/output:"):  # fmt: skip
            if _export(ckpt, int8):
                st.rerun()  # draw the section from the files written, without the button
    if found is not None:
        onnx, info = found
        parity_report(info["verification"])
        _downloads(run, onnx, info, key)
    web_section(run, ckpt, key)
    serve_section(run)


def web_section(run, ckpt: Path, key: str) -> None:
    """A folder with a page that runs the model in any browser, offline (bincls.inference.web_export)."""
    st.markdown("**A web page that runs it offline** (any browser, a phone's too; nothing is uploaded)")
    folder = current_web_export(ckpt)
    if folder is None:
        if st.button("Make the web page", key=f"{key}_web", icon=":material/language:"):
            with st.spinner("Exporting and checking the model, then writing the page…", show_time=True):
                try:
                    export_web(ckpt)
                except BinclsError as exc:
                    st.error(str(exc).partition("\n")[0], icon=":material/error:")
                    return
            st.rerun()
        return
    st.download_button("Download the page (zip)", data=lambda: web_zip_bytes(folder), on_click="ignore",
                       file_name=f"{run.id}-web.zip", mime="application/zip", icon=":material/download:",
                       key=f"{key}_webzip")  # fmt: skip
    st.caption(f"In the run folder: `{folder}`. Unzip anywhere and open index.html, or put the folder on any "
               "static web host.")  # fmt: skip


def _export(ckpt: Path, int8: bool) -> bool:
    """Export beside the checkpoint; False (and the reason shown) when the engine refused."""
    what = " in INT8 (calibrating on training images)" if int8 else ""
    with st.spinner(f"Exporting{what}, then checking the file against PyTorch on the run's test images…",
                    show_time=True):  # fmt: skip
        try:
            export_onnx(ckpt, int8=int8)
        except BinclsError as exc:
            head, _, report = str(exc).partition("\n")
            st.error(head, icon=":material/error:")
            if report:
                st.code(report, language=None)
            return False
    return True


def parity_report(r: dict) -> None:
    """What the check measured before the file was written."""
    cols = st.columns(6)
    cols[0].metric("Largest P difference", f"{r['max_prob_diff']:.2g}",
                   help="Largest difference in P(second class) between the file and bincls predict")
    cols[1].metric("Same label", f"{r['label_agreement']:.1%}", help="Share of images given the same class")
    no_labels = "The images checked have no labels for this model."
    for col, side in zip(cols[2:4], ("pytorch", "onnx")):
        value = r.get(f"accuracy_{side}")
        name = "PyTorch" if side == "pytorch" else "ONNX"
        col.metric(f"Accuracy ({name})", "–" if value is None else f"{value:.1%}",
                   help=no_labels if value is None else None)
    ref_mb = r["reference_size_bytes"] / 2**20 if r.get("reference_size_bytes") else None
    mb = r["size_bytes"] / 2**20
    cols[4].metric("Size", f"{mb:.2f} MB", delta=f"{ref_mb / mb:.1f}x smaller" if ref_mb else None,
                   delta_color="off", delta_arrow="off",
                   help=f"The fp32 file: {ref_mb:.2f} MB" if ref_mb else None)  # fmt: skip
    latency = "Median per image on one CPU thread, decoding excluded, resizing included"
    pace = None
    if r.get("reference_latency_ms"):
        latency += f"; the fp32 file: {r['reference_latency_ms']:.1f} ms, timed side by side"
        pace = "faster than fp32" if r.get("faster") else "not faster than fp32 here"
    cols[5].metric("CPU latency", f"{r['latency_ms']:.1f} ms", help=latency, delta=pace, delta_color="off",
                   delta_arrow="off")  # fmt: skip
    ood = ""
    if r.get("max_ood_diff") is not None:
        flagged = len(r.get("ood_flag_disagreements") or [])
        ood = (f" Out-of-distribution score: largest difference {r['max_ood_diff']:.2g}, "
               f"{flagged} image(s) flagged on one side only.")  # fmt: skip
    verdict = "passed" if r.get("passed") else "FAILED"
    st.caption(f"Checked against `bincls predict` on {r['images']} images ({r['source']}) before the file "
               f"was written: **{verdict}**.{ood}")  # fmt: skip


def _downloads(run, onnx: Path, info: dict, key: str) -> None:
    meta = json.dumps(info, indent=1, ensure_ascii=False) + "\n"
    c1, c2 = st.columns(2)
    # The model is read only when the button is clicked: a large file is not held in memory per rerun.
    c1.download_button(f"Download {onnx.name}", data=onnx.read_bytes, file_name=f"{run.id}-{onnx.name}",
                       mime="application/octet-stream", on_click="ignore", icon=":material/download:",
                       width="stretch", key=f"{key}_onnx")  # fmt: skip
    c2.download_button(f"Download {onnx.name}.json", data=meta, file_name=f"{run.id}-{onnx.name}.json",
                       mime="application/json", on_click="ignore", icon=":material/download:",
                       width="stretch", key=f"{key}_json")  # fmt: skip
    size = info["input"]["preprocessing"]["img_size"]
    st.caption(f"In the run folder: `{onnx}`. Input: the image's uint8 RGB pixels, any size, [height, width, "
               f"3]; the file resizes them to {size} px and normalizes them as training did. Outputs: "
               "probabilities, logit, ood_score; the JSON gives the class names, the threshold and the check "
               "above.")  # fmt: skip


def curl_command(run) -> str:
    """A request to the served model with one of the run's own images, so that it runs as shown."""
    return command(["curl", "-F", f"files=@{example_image(run) or 'photo.jpg'}", "http://127.0.0.1:8000/predict"])


def serve_section(run) -> None:
    st.markdown("**Serve it over HTTP** (in a terminal, from the project folder)")
    show_command(serve_command(run.path))
    st.caption("Then, from another terminal, send it an image (here one of the run's test images):")
    show_command(curl_command(run))
    st.caption("The server exports the run into bincls's cache once (checked as above) and answers with "
               "onnxruntime and the run's saved threshold: in INT8, with fp32 for the images near the "
               "threshold (the labels of `bincls predict`, probabilities within the INT8 check's difference, "
               "at about 70% of fp32's CPU time); add `--fp32` for fp32 alone. API docs: "
               "http://127.0.0.1:8000/docs.")  # fmt: skip
