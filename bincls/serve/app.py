"""The REST API over one exported model: POST /predict, GET /health, GET /model, docs at /docs.

Stateless: every request carries its images and nothing is kept, so scaling out is running more
replicas behind a load balancer. Bad input gets a 4xx with a JSON reason, never a 500.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import anyio
from fastapi import Depends, FastAPI, File, HTTPException, Security, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

import bincls
from bincls.data.images import MAX_FILE_BYTES, MAX_PIXELS, ImageProblem
from bincls.inference.onnx_predict import OnnxPredictor

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Each image may also have at most the app's 120 megapixels
    (`bincls.data.images.MAX_PIXELS`), checked from its header before it is decoded."""

    max_files: int = 64
    max_request_bytes: int = MAX_FILE_BYTES  # the app's limit for one image file (512 MiB)


class Answer(BaseModel):
    filename: str
    class_name: str
    probability: float  # of class_name
    p_class1: float  # of the second class, whatever the answer
    ood: bool | None  # True: unlike the training images; null when the model has no detector


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413, from its Content-Length or while it streams in."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _refusal(self) -> str:
        return f"The request is larger than {self.max_bytes:,} bytes: send fewer or smaller images at a time."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self._refusal()}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a chunked upload that said nothing of its size
                raise HTTPException(413, self._refusal())
            return message

        await self.app(scope, counted, send)


def _refuse_images(problems: list[dict]) -> JSONResponse:
    too_large = all(p["reason"].startswith("too large") for p in problems)
    names = ", ".join(p["filename"] for p in problems[:5])
    return JSONResponse(
        {"detail": f"{len(problems)} file(s) cannot be used as images ({names}); nothing was predicted.",
         "files": problems},
        status_code=413 if too_large else 422,
    )  # fmt: skip


def create_app(model: OnnxPredictor, limits: Limits = Limits(), api_key: str | None = None,
               slots: int = 2) -> FastAPI:  # fmt: skip
    """The API for `model`. `api_key`: required in the X-API-Key header of /predict and /model.

    `slots` images are decoded and scored at once (one per core: each onnxruntime run uses one thread);
    requests beyond that wait their turn instead of slowing every other request down.
    """
    a, b = model.class_names
    app = FastAPI(
        title=f"bincls: {a} or {b}", version=bincls.__version__,
        description=f"Binary image classifier ({model.info.get('model')}, {model.info.get('precision')}). "
                    f"POST images to /predict; GET /model for classes, threshold and preprocessing.",
    )  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    scoring = anyio.CapacityLimiter(slots)
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's API key")

    # async, as the endpoints below: FastAPI would run a plain function in its thread pool, and each
    # hop to a thread costs more than this comparison.
    async def check_key(key: str | None = Security(key_header)) -> None:
        if api_key and not hmac.compare_digest((key or "").encode(), api_key.encode()):
            raise HTTPException(401, f"Missing or wrong API key: send it in the {API_KEY_HEADER} header.")

    @app.get("/health", summary="Is the server up (no API key needed, for load balancers)")
    async def health() -> dict:
        return {"status": "ok", "model": model.info.get("model"), "classes": model.class_names}

    @app.get("/model", dependencies=[Depends(check_key)], summary="Classes, threshold, preprocessing, origin")
    async def describe() -> dict:
        return {**model.describe(), "limits": {**vars(limits), "max_pixels": MAX_PIXELS}}

    def score_all(named: list[tuple[str, bytes]]) -> JSONResponse | list[dict]:
        pixels, problems = [], []
        for name, data in named:
            try:
                pixels.append((name, model.pixels(data, name)))
            except ImageProblem as exc:
                problems.append({"filename": name, "reason": exc.reason})
        if problems:
            return _refuse_images(problems)
        return [model.answer(name, *model.score(px)) for name, px in pixels]

    @app.post("/predict", dependencies=[Depends(check_key)], response_model=list[Answer],
              summary="Class and probability of each image, in the order given",
              responses={413: {"description": "too many files, too many bytes or pixels"},
                         422: {"description": "a file is not a usable image"}})  # fmt: skip
    async def predict(files: list[UploadFile] = File(..., description="one or more image files")):  # noqa: B008
        if len(files) > limits.max_files:
            raise HTTPException(413, f"{len(files)} files in one request; at most {limits.max_files}.")
        named = [(f.filename or f"image {i + 1}", await f.read()) for i, f in enumerate(files)]
        # Decoding and scoring release the GIL: one worker thread per slot, the event loop stays free.
        answer = await anyio.to_thread.run_sync(score_all, named, limiter=scoring)
        return answer if isinstance(answer, JSONResponse) else JSONResponse(answer)

    return app
