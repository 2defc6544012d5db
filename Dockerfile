# Herald: one image for every role (herald start | api | worker | sandbox | migrate).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workers ./workers
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
# Runtime dependencies only; postinstall regenerates the Prisma client sources (unused at runtime,
# the compiled client is in dist/).
RUN npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
# The dashboard is served from its source files (plain HTML, CSS and JS, no build step).
COPY --from=build /app/src/http/dashboard ./src/http/dashboard
USER node
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["start"]
