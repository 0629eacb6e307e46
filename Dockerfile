# syntax=docker/dockerfile:1.7
# The data-plane image: one binary, `chat-system`, with the subcommands serve, api, indexer,
# counter, migrate, reindex and recount. Build from the repository root:
#   docker build -t chat-system:dev .
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# sqlx checks queries against .sqlx/ instead of a live database.
ENV SQLX_OFFLINE=true CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat-system --bin chat-system \
    && install -D target/release/chat-system /out/chat-system \
    && mkdir -p /out/data

# distroless/cc: glibc, libgcc, OpenSSL and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/chat-system /usr/local/bin/chat-system
# The data directory must belong to the runtime user: `serve` writes its SQLite file and the
# embedded index there, and a fresh Docker volume copies this ownership.
COPY --from=build --chown=65532:65532 /out/data /var/lib/chat-system
# Numeric, so Kubernetes' runAsNonRoot can verify it. The root filesystem may be read-only: the
# binary writes only under CHAT_DATA_DIR and /tmp (both volumes in Kubernetes).
USER 65532:65532
ENV CHAT_DATA_DIR=/var/lib/chat-system \
    CHAT_LISTEN=0.0.0.0:3000 \
    CHAT_ADMIN_LISTEN=0.0.0.0:9000
WORKDIR /var/lib/chat-system
VOLUME ["/var/lib/chat-system"]
# 3000: public API (api, serve). 9000: admin port on every role (/up, /readyz, /metrics).
EXPOSE 3000 9000
ENTRYPOINT ["/usr/local/bin/chat-system"]
CMD ["serve"]
