# project38 controller. Set DATABASE_URL to a managed PostgreSQL in production; without it the
# embedded server keeps its data in $P38_HOME (mount a volume there).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    P38_HOST=0.0.0.0 \
    P38_HOME=/data \
    P38_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY handlers ./handlers
COPY reconcilers ./reconcilers
RUN pip install ".[gcp]" \
    && useradd --create-home --uid 10001 p38 \
    && mkdir -p /data \
    && chown p38:p38 /data

USER p38
EXPOSE 8080
# Railway injects PORT; elsewhere P38_PORT or 8080.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('P38_PORT', os.environ.get('PORT', '8080')), timeout=4)" || exit 1
CMD ["p38", "serve"]
