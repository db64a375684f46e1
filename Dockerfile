# cachelens image: Node 20 (the version CI tests), TypeScript run through tsx, no build step.
FROM node:20-bookworm-slim AS deps
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY bin bin
COPY src src
COPY migrations migrations
RUN mkdir -p /var/lib/cachelens && chown node:node /var/lib/cachelens
USER node
ENV CACHELENS_STORAGE_PATH=/var/lib/cachelens/cachelens.db
# OTLP/gRPC, OTLP/HTTP, self-telemetry (/metrics, /healthz, /readyz)
EXPOSE 4317 4318 9464
ENTRYPOINT ["node", "bin/cachelens.js"]
CMD ["run"]
