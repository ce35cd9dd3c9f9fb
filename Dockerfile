# The Kibanda appliance image: portal (gunicorn) + agent, one site per container.
# Pure-Python dependencies only, so the same file builds for linux/amd64, arm64 and arm/v7:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t kibanda .
# Run: docker run -p 8080:8080 -v kibanda-data:/data -e KIBANDA_ROUTER_HOST=192.168.88.1 kibanda
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KIBANDA_INSTANCE=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY agent ./agent
COPY hub ./hub
COPY hotspot-html ./hotspot-html
# Editable install: the hotspot-html directory is read from beside the portal package.
RUN pip install -e . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin kibanda \
    && mkdir -p /data && chown kibanda:kibanda /data

USER kibanda
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1

# init is idempotent (keys and the owner are created once, then left alone); the agent runs
# in the background and gunicorn takes over the shell's process id so `docker stop` reaches it.
CMD ["sh", "-c", "kibanda init && (kibanda agent &) && exec kibanda serve --host 0.0.0.0 --port 8080"]
