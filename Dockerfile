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

# Run: a slim image and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/rollcall --create-home rollcall
COPY --from=build /usr/local/bin/rollcall /usr/local/bin/rollcall
USER rollcall
WORKDIR /var/lib/rollcall
ENV ROLLCALL_LISTEN=0.0.0.0:8080 \
    ROLLCALL_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["rollcall"]
CMD ["serve"]
