# syntax=docker/dockerfile:1
# Build stage: install all dependencies and compile TypeScript.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

# Runtime stage: compiled output and production dependencies only.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 9464
# A heap ceiling keeps memory bounded and predictable (SLUICE_MAX_HEAP_MB, default 1280); a larger young
# generation (SLUICE_SEMI_SPACE_MB, default 64) lets fewer short-lived objects reach it. See README.
CMD ["sh", "-c", "exec node --max-old-space-size=${SLUICE_MAX_HEAP_MB:-1280} --max-semi-space-size=${SLUICE_SEMI_SPACE_MB:-64} dist/src/main.js"]
