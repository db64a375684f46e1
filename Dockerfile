# cachelens image: Node 20 (the version CI tests), running the compiled JavaScript in dist/.
FROM node:20-bookworm-slim AS build
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src src
# npm ci builds dist/ (the prepare script); the dev dependencies it needed are then pruned.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY bin bin
COPY migrations migrations
RUN mkdir -p /var/lib/cachelens && chown node:node /var/lib/cachelens
USER node
ENV CACHELENS_STORAGE_PATH=/var/lib/cachelens/cachelens.db
# Two glibc malloc arenas instead of up to 8 per core: scraping 1,000 targets, RSS 331 -> 243 MB at the
# same CPU (bench/README.md, "cachelens beside Prometheus").
ENV MALLOC_ARENA_MAX=2
# OTLP/gRPC, OTLP/HTTP, self-telemetry (/metrics, /healthz, /readyz)
EXPOSE 4317 4318 9464
# A young generation of 8 MB semi-spaces instead of V8's 16 MB: RSS 149-162 -> 140-145 MB scraping 1,000
# targets and 317-348 -> 297-301 MB at 10,000 spans/s, at the same CPU (bench/README.md). Node reads it
# only from its command line or NODE_OPTIONS, not once running. bench/processes.ts runs the daemon so too.
# A 1 GiB old-space limit: V8 scales how far the heap may grow past what survived a collection with its limit
# (up to 4x with the default limit on a large machine, about 1.6x at 1 GiB), so request Buffers are freed
# sooner. RSS 289-308 -> 234-241 MB at 10,000 spans/s and 333 -> 292 MB under overload, within the CPU noise.
# The daemon holds far less than 1 GiB (enrich.facts_cache_bytes is its largest part).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--max-old-space-size=1024", "bin/cachelens.js"]
CMD ["run"]
