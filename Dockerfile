# syntax=docker/dockerfile:1.7
#
# One image per service, all from this file:
#   docker build --target identity-svc -t registry.example.com/reactivation/identity-svc:TAG .
#   (targets: identity-svc, license-svc, billing-svc, notify-svc, gateway, and
#   stripe-double: a local Stripe for the dev overlay, never for production)
#
# Dependencies compile once and stay cached across builds (BuildKit cache
# mounts for the registry and the target directory); the runtime images are
# distroless (glibc, CA certificates, no shell) and run as a non-root user.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin identity-svc --bin license-svc --bin billing-svc --bin notify-svc --bin gateway --bin stripe-double \
    && mkdir -p /out \
    && cp target/release/identity-svc target/release/license-svc target/release/billing-svc target/release/notify-svc target/release/gateway target/release/stripe-double /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
ENV RUST_LOG=info LOG_FORMAT=json
# Every image's admin port: Prometheus metrics at /metrics when ADMIN_ADDR is set.
EXPOSE 9090

FROM runtime AS identity-svc
COPY --from=build /out/identity-svc /usr/local/bin/identity-svc
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/identity-svc"]

FROM runtime AS license-svc
COPY --from=build /out/license-svc /usr/local/bin/license-svc
EXPOSE 50052
ENTRYPOINT ["/usr/local/bin/license-svc"]

FROM runtime AS billing-svc
COPY --from=build /out/billing-svc /usr/local/bin/billing-svc
EXPOSE 50053
ENTRYPOINT ["/usr/local/bin/billing-svc"]

FROM runtime AS notify-svc
COPY --from=build /out/notify-svc /usr/local/bin/notify-svc
EXPOSE 50054
ENTRYPOINT ["/usr/local/bin/notify-svc"]

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS stripe-double
COPY --from=build /out/stripe-double /usr/local/bin/stripe-double
EXPOSE 12111
ENTRYPOINT ["/usr/local/bin/stripe-double"]
