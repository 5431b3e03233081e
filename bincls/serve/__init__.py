"""The prediction server: an exported ONNX model behind a small REST API (FastAPI on uvicorn)."""
