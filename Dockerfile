# callstream in a container: built on Debian 12 with the project's own dependency script,
# run on a slim Debian 12 with only the libraries the binary links and its speech data.
# Used by compose.yaml (docs/deploy.md).
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build --target callstream -j "$(nproc)" \
 && strip -o /callstream build/callstream

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl \
      libuv1 libssl3 libsqlite3-0 libcjson1 libspeexdsp1 libsodium23 libcurl4 libpq5 \
      libhiredis0.14 libpocketsphinx3 libsphinxbase3 pocketsphinx-en-us \
      libespeak-ng1 espeak-ng-data libflite1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/callstream --create-home --shell /usr/sbin/nologin \
      callstream
COPY --from=build /callstream /usr/local/bin/callstream
USER callstream
WORKDIR /var/lib/callstream
ENV DATA_DIR=/var/lib/callstream BIND=0.0.0.0 PORT=8080
VOLUME /var/lib/callstream
EXPOSE 8080
# Liveness only: whether this node takes new work is /ready, the load balancer's check.
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# SIGTERM drains: no new calls, live streams get SHUTDOWN_GRACE_S (compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/callstream"]
CMD ["serve"]
