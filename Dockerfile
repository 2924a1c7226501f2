# Build stage: full dev install, compile to dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY lib lib
COPY bin bin
RUN npx tsc -p .
# What --version, the start-up line and /healthz say of the build:
# docker build --build-arg KUBE2IAM_COMMIT=$(git rev-parse HEAD) .
ARG KUBE2IAM_COMMIT=unknown
RUN node -e "process.stdout.write(JSON.stringify({ commit: process.env.KUBE2IAM_COMMIT, date: new Date().toISOString().slice(0, 19) + 'Z' }))" > build-info.json

# Runtime stage: production dependencies, the compiled program, the iptables tools that
# --iptables runs and ip (iproute2), which --container-credentials-link runs
# (lib/node/commands.ts lists every command the program can run).
FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# A small young generation and an old one that fits the DaemonSet's 128 Mi limit with the
# rest of the process (about 60 MB outside the heap): past it V8 fails with a heap error
# rather than the kernel killing the container. benchmarks/RESULTS.md measures the proxy
# with exactly these options. Below 2 MB of semi-space, connection churn (SDKs that do not
# keep connections alive) halves the request rate. A cluster-wide watch (no --node) of
# many more than 10,000 pods needs a larger --max-old-space-size and memory limit.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=64"
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/lib dist/lib
COPY --from=build /app/dist/bin dist/bin
COPY --from=build /app/build-info.json build-info.json
# Root by default, as kube2iam's image: kube2iam's own DaemonSet (privileged, no
# runAsUser) must work with only the image swapped, and --iptables needs NET_ADMIN.
# Without --iptables nothing needs root: run as the image's user `node` (uid 1000) with
# runAsNonRoot (manifests/daemonset.yaml says how).
USER root
ENTRYPOINT ["node", "/app/dist/bin/kube2iam.js"]
