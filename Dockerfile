# Build: docker build -t pubsub .
# Run:   docker run --rm -p 8000:8000 pubsub   (flags go after the image name; or set PUBSUB_* variables)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pubsub

FROM debian:bookworm-slim
# ca-certificates: rediss:// connections trust the system's certificate authorities.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --no-create-home --shell /usr/sbin/nologin pubsub
COPY --from=build /src/target/release/pubsub /usr/local/bin/pubsub
USER pubsub
# Listen on every interface of the container, on port 8000.
ENV PUBSUB_HOST=0.0.0.0 \
    PUBSUB_PORT=8000
EXPOSE 8000
# No HEALTHCHECK: the image carries no HTTP client. Probe GET /health from outside.
ENTRYPOINT ["/usr/local/bin/pubsub"]
