# syntax=docker/dockerfile:1
# Build: a release binary. The SQL is checked against the committed query data (.sqlx; the
# SQLX_OFFLINE=true of .cargo/config.toml), so no database is needed here. Nothing under tests/ is
# read: the sandbox's demo charts are compiled in from src/sandbox/charts.
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
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rollcall \
    && cp target/release/rollcall /usr/local/bin/rollcall

# helm, pinned and sha256-checked (scripts/install-helm): the runner drives it, and `serve` checks
# its version at start-up.
FROM python:3-slim-bookworm AS helm
COPY scripts/install-helm /usr/local/bin/install-helm
RUN install-helm /opt/helm

# Run: a slim image and an unprivileged user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/rollcall --create-home rollcall
COPY --from=helm /opt/helm/helm /usr/local/bin/helm
COPY --from=build /usr/local/bin/rollcall /usr/local/bin/rollcall
USER rollcall
WORKDIR /var/lib/rollcall
ENV ROLLCALL_LISTEN=0.0.0.0:8080 \
    ROLLCALL_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["rollcall"]

# `rollcall sandbox` (docker compose --profile sandbox): it also starts a private PostgreSQL, whose
# server binaries it finds in /usr/lib/postgresql/*/bin.
FROM runtime AS sandbox
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/*
USER rollcall
CMD ["sandbox"]

# The default target: `rollcall serve`.
FROM runtime AS serve
CMD ["serve"]
