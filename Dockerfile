# Multi-stage build of both binaries: builder on the official Rust image,
# small Debian runtime, non-root user.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p matcher -p signaller

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home rvc
COPY --from=builder /src/target/release/matcher /src/target/release/signaller /usr/local/bin/
USER rvc
ENV RUST_LOG=info RVC_LOG_FORMAT=json
EXPOSE 8000 4000
CMD ["matcher", "--role", "all"]
