# Atelier node image: `atelier serve` on port 8000, as a non-root user.
# Build: docker build -t atelier:0.1.0 .   (compose.yaml builds and tags it)
# The web client, built once by Vite; only its static files reach the final image.
FROM node:20.18.1-bookworm-slim AS client
WORKDIR /client
COPY client_demo/package.json client_demo/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY client_demo ./
RUN npm run build

FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies and the package in one layer (every dependency ships manylinux wheels:
# no compiler needed). README.md is the package's readme in pyproject.toml.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY server ./server
RUN pip install . && rm -rf /tmp/src
WORKDIR /app

# The built web client, served at / (ATELIER_CLIENT_DIR).
COPY --from=client /client/dist /app/client

RUN groupadd --system --gid 10001 atelier \
    && useradd --system --uid 10001 --gid atelier --no-create-home --home-dir /app atelier \
    && mkdir -p /app/data && chown atelier:atelier /app/data
USER 10001:10001

# SQLite and the generated JWT secret when run alone; compose sets Postgres and the secret.
ENV ATELIER_DATA_DIR=/app/data \
    ATELIER_CLIENT_DIR=/app/client

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# SIGTERM (docker stop): readiness goes false, sockets close with 1012, writes flush.
STOPSIGNAL SIGTERM
CMD ["atelier", "serve", "--host", "0.0.0.0", "--port", "8000"]
