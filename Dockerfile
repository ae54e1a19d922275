# syntax=docker/dockerfile:1
# pg-keeper in a container: one keeper beside one PostgreSQL server (same pod, or a host that can reach
# both servers). The configuration comes from a mounted file:
#
#   docker build -t pg-keeper .
#   docker run -d --init --name pg-keeper-node1 -p 9754:9754 \
#     -v /etc/pg-keeper/pg-keeper.yml:/etc/pg-keeper/pg-keeper.yml:ro \
#     -v pg-keeper-state:/var/lib/pg-keeper \
#     pg-keeper run --config /etc/pg-keeper/pg-keeper.yml --node node1
#
# The config's `listen` must be 0.0.0.0:9754 (the default) for the published port and the health check;
# set PG_KEEPER_HEALTH_URL when it is another port. --init (tini) reaps what an after_command leaves
# behind. docs/examples/docker-compose.yml runs a whole pair. `npm run test:container` builds this file
# and runs the image beside a real pair (README, "Docker").

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: one JavaScript file with pg-keeper and its dependencies (scripts/bundle.ts) ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/bundle.ts ./scripts/bundle.ts
COPY src ./src
RUN npm run bundle

# ---- runtime: Node.js and that file; no node_modules, no npm run at start ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    STATE_DIRECTORY=/var/lib/pg-keeper \
    PG_KEEPER_HEALTH_URL=http://127.0.0.1:9754/health
# A fixed uid, so that a mounted state volume can be prepared on the host (chown 10001).
RUN groupadd --system --gid 10001 pg-keeper \
 && useradd --system --uid 10001 --gid pg-keeper --home-dir /var/lib/pg-keeper --shell /usr/sbin/nologin pg-keeper \
 && mkdir -p /etc/pg-keeper /var/lib/pg-keeper \
 && chown pg-keeper:pg-keeper /var/lib/pg-keeper
COPY --from=build /app/build/pg-keeper.cjs /app/build/pg-keeper.cjs.LEGAL.txt /app/
COPY deploy/pg-keeper.yml.example /etc/pg-keeper/pg-keeper.yml.example
COPY deploy/after_command/move-vip.sh /etc/pg-keeper/move-vip.sh.example
USER pg-keeper
WORKDIR /var/lib/pg-keeper
# The keeper's state (what it must remember across restarts: STATE_DIRECTORY/<node>.state.json).
VOLUME ["/var/lib/pg-keeper"]
EXPOSE 9754
# Slim images have no curl: pg-keeper asks its own /health. With a web_config_file, give it what it
# needs through the environment: PG_KEEPER_HEALTH_URL=https://127.0.0.1:9754/health,
# PG_KEEPER_HEALTH_CACERT (the CA of the keeper's certificate), PG_KEEPER_HEALTH_CERT and _KEY (a client
# certificate), PG_KEEPER_HEALTH_USER and PG_KEEPER_HEALTH_PASSWORD_FILE (a user of basic_auth_users).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "/app/pg-keeper.cjs", "health"]
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/pg-keeper.cjs"]
CMD ["run", "--config", "/etc/pg-keeper/pg-keeper.yml"]
