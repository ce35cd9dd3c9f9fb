# The Kibanda appliance image: portal (gunicorn) + agent under `kibanda run`, one site per
# container, the instance folder on the /data volume.
# Python code on the official python:3.11-slim base (amd64, arm64 and arm/v7), so one file
# builds all three (every dependency has a wheel for them but Pillow on arm/v7, which is
# compiled in the build stage: see below):
#   scripts/build-image                       (docker buildx; tars for /container/add file=)
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t kibanda .
# Run: docker run -p 8080:8080 -v kibanda-data:/data -e KIBANDA_ROUTER_HOST=192.168.88.1 kibanda

# --- build: one wheel holding the code, the hotspot pages and the router scripts ------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY agent ./agent
COPY hub ./hub
# Inside the package, where an installed Kibanda looks for them (package data).
COPY hotspot-html ./portal/hotspot_html_files
COPY provisioning ./portal/provisioning_files
# PyPI has no Pillow wheel for arm/v7: there it is compiled, with gcc and the JPEG and zlib
# headers (this stage only; the run stage gets the libraries).
ARG TARGETARCH
ARG TARGETVARIANT
RUN if [ "${TARGETARCH}${TARGETVARIANT}" = "armv7" ]; then \
        apt-get update && apt-get install -y --no-install-recommends \
            gcc libc6-dev libjpeg62-turbo-dev zlib1g-dev && rm -rf /var/lib/apt/lists/*; \
    fi \
    && pip wheel --wheel-dir /wheels .

# --- run: the wheels only, a user without rights, the data on a volume -----------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KIBANDA_INSTANCE=/data \
    # Sized for a router: one worker process with four threads (a Raspberry Pi: 2 workers).
    KIBANDA_WEB_WORKERS=1 \
    KIBANDA_WEB_THREADS=4
ARG TARGETARCH
ARG TARGETVARIANT
COPY --from=build /wheels /wheels
# arm/v7: the Pillow built in the build stage needs the JPEG and zlib libraries at run time.
RUN if [ "${TARGETARCH}${TARGETVARIANT}" = "armv7" ]; then \
        apt-get update && apt-get install -y --no-install-recommends libjpeg62-turbo zlib1g \
        && rm -rf /var/lib/apt/lists/*; \
    fi
RUN pip install --no-index /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin kibanda \
    && mkdir -p /data && chown kibanda:kibanda /data && chmod 0700 /data

USER kibanda
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Unhealthy when the portal does not answer, or when the agent has stopped working (no
# heartbeat for three intervals): ?require=agent answers 503 then.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz?require=agent', timeout=4)" || exit 1

# init is idempotent (keys and the owner are made once; the owner's password is printed in
# `docker logs` the first time). `kibanda run` then takes the shell's process id, so
# `docker stop` reaches it, and it restarts the portal or the agent if either dies.
CMD ["sh", "-c", "kibanda init && exec kibanda run --host 0.0.0.0 --port 8080"]
