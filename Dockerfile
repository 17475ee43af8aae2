# Herald: one image, one binary (`herald`). Templates and locales are compiled in. Built with
# the default features: no `bench` feature, so no benchmark code (it creates and drops vhosts
# and databases) is in the image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p herald \
 && cp target/release/herald /usr/local/bin/herald

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 herald
COPY --from=build /usr/local/bin/herald /usr/local/bin/herald
USER herald
ENTRYPOINT ["herald"]
CMD ["worker"]
