# Latchkey's container image: built with the same command CI runs
# (`cargo build --release --locked --bin latchkey`), run as a non-root user on a slim
# Debian, with the data directory as a volume and a health check on /readyz.
# docs/DEPLOY.md says what of this was exercised and what was not.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin latchkey \
 && install -m 0755 target/release/latchkey /usr/local/bin/latchkey

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/latchkey --create-home latchkey
COPY --from=build /usr/local/bin/latchkey /usr/local/bin/latchkey
USER latchkey
WORKDIR /var/lib/latchkey
ENV LATCHKEY_LISTEN=0.0.0.0:8080 \
    LATCHKEY_DATA_DIR=/var/lib/latchkey \
    LATCHKEY_LOG_FORMAT=json
VOLUME ["/var/lib/latchkey"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
