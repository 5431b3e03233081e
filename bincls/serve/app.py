"""The REST API over one exported model: POST /predict, GET /health, GET /model, docs at /docs.

Stateless: every request carries its images and nothing is kept (but for `--collect`), so scaling out
is running more replicas behind a load balancer. Bad input gets a 4xx with a JSON reason, never a 500.
What a request must be before its body is read (key, size, the server's byte budget, pace) is checked
in front of the app (`guard`); the Host header against the allowed names by Starlette's
TrustedHostMiddleware (a DNS-rebinding page cannot reach a server on localhost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import anyio
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware

import bincls
from bincls.checks import is_int, is_number
from bincls.data.images import MAX_FILE_BYTES, MAX_PIXELS, ImageProblem
from bincls.errors import BinclsError
from bincls.inference.onnx_predict import OnnxPredictor
from bincls.serve.guard import API_KEY_HEADER, BodyRules, ByteBudget, RequestGuard

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
MAX_FILES_CAP = 1000  # the form parser's own limit on files in one request (Starlette's max_files)
MiB = 2**20


@dataclass(frozen=True)
class Limits:
    """What one request may carry, and what all requests may hold at once. Each image may also have at
    most the app's 120 megapixels (`bincls.data.images.MAX_PIXELS`), checked from its header before it is
    decoded, and its decode counts against the decode budget every decode of the process shares."""

    max_files: int = 64
    max_request_bytes: int = MAX_FILE_BYTES  # the app's limit for one image file (512 MiB)
    max_held_bytes: int = 2 * MAX_FILE_BYTES  # every request's body at once, in memory or spooled to disk
    body_grace_s: float = 30.0  # a body arrives whole within this, or at least ...
    min_body_rate: int = 16 * 1024  # ... this many bytes a second over every such span, else 408

    def __post_init__(self) -> None:
        checks = [
            (is_int(self.max_files) and 1 <= self.max_files <= MAX_FILES_CAP,
             f"--max-files must be a whole number from 1 to {MAX_FILES_CAP}, got {self.max_files!r}"),
            (is_int(self.max_request_bytes) and MiB <= self.max_request_bytes <= 64 * 2**30,
             f"--max-request-mb must be from 1 to 65,536 MiB, got {self.max_request_bytes / MiB!r} MiB"),
            (is_int(self.max_held_bytes) and self.max_held_bytes >= self.max_request_bytes,
             "--max-held-mb must be at least --max-request-mb (else the largest request is never taken)"),
            (is_number(self.body_grace_s) and self.body_grace_s > 0, "body_grace_s must be above 0"),
            (is_number(self.min_body_rate) and self.min_body_rate > 0, "min_body_rate must be above 0"),
        ]  # fmt: skip
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise BinclsError("; ".join(problems) + ".")


class Answer(BaseModel):
    filename: str
    class_name: str | None  # null: the file is not a usable image (see error)
    probability: float | None  # of class_name
    p_class1: float | None  # of the second class, whatever the answer
    ood: bool | None  # True: unlike the training images; null when the model has no detector
    ood_score: float | None  # higher is less like the training images; null without a detector
    error: str | None  # why this file got no answer; null when it got one


def _refuse_images(problems: list[dict]) -> JSONResponse:
    too_large = all(p["reason"].startswith("too large") for p in problems)
    names = ", ".join(p["filename"] for p in problems[:5])
    return JSONResponse(
        {"detail": f"{len(problems)} file(s) cannot be used as images ({names}); nothing was predicted.",
         "files": problems},
        status_code=413 if too_large else 422,
    )  # fmt: skip


def allowed_host_patterns(names: list[str]) -> list[str]:
    """Host names as TrustedHostMiddleware takes them ('*', 'name', '*.domain'), checked here: its own
    checks are asserts, which `python -O` drops."""
    out = []
    for name in names:
        name = name.strip().lower()
        ok = bool(name) and not any(c.isspace() or c in ",/" for c in name)
        if not ok or "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*.")):
            raise BinclsError(f"--allowed-host {name!r} is not a host name: give a name such as "
                              "example.com, an address, '*.example.com', or '*' for any.")  # fmt: skip
        out.append(name)
    return out


def create_app(
    model: OnnxPredictor, limits: Limits = Limits(), api_key: str | None = None, slots: int = 2,
    allowed_hosts: list[str] | None = None, collector=None,
) -> FastAPI:  # fmt: skip
    """The API for `model`. `api_key`: required in the X-API-Key header of every path but /health (the
    docs pages are then off; /openapi.json needs the key). `allowed_hosts`: the Host names answered
    (default: the loopback names). `collector`: keeps the images the model was unsure about.

    Images are decoded and scored one at a time in `slots` worker threads (one per core: each
    onnxruntime run uses one thread), taken image by image in arrival order, so a request of many large
    images does not hold a slot while a small request waits; requests beyond that wait their turn
    instead of slowing every other request down.
    """
    a, b = model.class_names
    hidden = {"docs_url": None, "redoc_url": None} if api_key else {}
    app = FastAPI(
        title=f"bincls: {a} or {b}", version=bincls.__version__, **hidden,
        description=f"Binary image classifier ({model.info.get('model')}, {model.info.get('precision')}). "
                    f"POST images to /predict; GET /model for classes, threshold and preprocessing.",
    )  # fmt: skip
    hosts = allowed_host_patterns(allowed_hosts if allowed_hosts else list(LOOPBACK_NAMES))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    rules = BodyRules(limits.max_request_bytes, ByteBudget(limits.max_held_bytes), limits.body_grace_s,
                      limits.min_body_rate)  # fmt: skip
    app.add_middleware(RequestGuard, api_key=api_key, rules=rules)  # outermost: before anything reads
    app.state.budget = rules.budget
    scoring = anyio.CapacityLimiter(slots)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"Internal error ({type(exc).__name__}); the server goes on."}, 500)

    @app.get("/health", summary="Is the server up (no API key needed, for load balancers)")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/model", summary="Classes, threshold, preprocessing, origin")
    async def describe() -> dict:
        return {**model.describe(), "limits": {**vars(limits), "max_pixels": MAX_PIXELS}}

    def score_one(file: BinaryIO, name: str) -> dict:
        try:
            pixels = model.pixels(file, name)
            answer = model.answer(name, *model.score(pixels))
        except ImageProblem as exc:
            return model.refusal(name, exc.reason)
        except MemoryError:
            return model.refusal(name, "not enough memory to decode it now: send it again later")
        del pixels
        if collector is not None:
            collector.offer(file, answer, model.threshold)
        return answer

    @app.post("/predict", response_model=list[Answer],
              summary="Class and probability of each image, in the order given",
              responses={413: {"description": "too many files or bytes; every image too large"},
                         422: {"description": "no file is a usable image"}})  # fmt: skip
    async def predict(files: list[UploadFile] = File(..., description="one or more image files")):  # noqa: B008
        if len(files) > limits.max_files:
            raise HTTPException(413, f"{len(files)} files in one request; at most {limits.max_files}.")
        answers = []
        for i, f in enumerate(files):  # one image at a time: decoded, scored, let go
            name = f.filename or f"image {i + 1}"
            answers.append(await anyio.to_thread.run_sync(score_one, f.file, name, limiter=scoring))
        if all(a["error"] for a in answers):
            return _refuse_images([{"filename": a["filename"], "reason": a["error"]} for a in answers])
        return JSONResponse([_finite(a) for a in answers])

    return app


def _finite(answer: dict) -> dict:
    """JSON has no NaN or inf: a model that gives one says null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in answer.items()}


__all__ = ["API_KEY_HEADER", "Limits", "create_app"]
