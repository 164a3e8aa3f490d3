"""The HTTP API through FastAPI's TestClient (or uvicorn in a thread) over real banks, model and index."""
