# syntax=docker/dockerfile:1
#
# One image for every dwsync service. Pick the service with the command:
#
#   docker build -t dwsync .
#   docker run --rm dwsync dwsync-ingest
#   docker run --rm dwsync dwsync-uploader
#   docker run --rm dwsync dwsync-control
#   docker run --rm dwsync dwsync-archiver
#   docker run --rm dwsync dwsync-backfill
#
# Configuration comes from DWSYNC_* environment variables (see docker-compose.yml).
# Needs BuildKit (the default builder since Docker 23) for the cache mounts below.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# The rust:*-bookworm image already has gcc, make, perl, pkg-config, zlib1g-dev and libssl-dev,
# which the bundled librdkafka build (rdkafka-sys, with TLS and SASL SCRAM) needs. cmake is added for C dependencies that build
# with it. No protoc: the .proto files are compiled by the pure-Rust protox.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The cargo registry and target dir live in BuildKit cache mounts, so a rebuild after a source
# change does not recompile every dependency. The binaries are copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p dwsync-ingest -p dwsync-uploader -p dwsync-archiver -p dwsync-control \
      -p dwsync-backfill \
 && mkdir -p /out \
 && cp target/release/dwsync-ingest target/release/dwsync-uploader target/release/dwsync-archiver target/release/dwsync-control \
      target/release/dwsync-backfill /out/

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

# ca-certificates: TLS to Kafka/S3 endpoints. libssl3: librdkafka's TLS (kafka.security_protocol
# ssl / sasl_ssl). curl: container healthchecks (GET /healthz).
# tini: PID 1 that forwards SIGTERM/SIGINT to the service and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/dwsync --create-home \
      --shell /usr/sbin/nologin dwsync

COPY --from=builder /out/dwsync-ingest /out/dwsync-uploader /out/dwsync-archiver /out/dwsync-control /out/dwsync-backfill \
     /usr/local/bin/

USER dwsync
WORKDIR /var/lib/dwsync
ENV RUST_LOG=info
EXPOSE 8080

ENTRYPOINT ["/usr/bin/tini", "--"]
# No default service: the command names the binary to run.
CMD ["/bin/sh", "-c", "echo 'usage: docker run IMAGE dwsync-ingest|dwsync-uploader|dwsync-archiver|dwsync-control|dwsync-backfill' >&2; exit 2"]
