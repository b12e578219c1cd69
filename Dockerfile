# detour's container image: a static binary on a distroless, non-root base.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t detour .
#
# Where Docker Hub and gcr.io are unreachable (the networks detour is for), build from mirror
# copies of the two base images. detour's own rules give their names:
#
#   $ detour rewrite golang:1.26 gcr.io/distroless/static:nonroot
#   docker.m.daocloud.io/library/golang:1.26
#   gcr.m.daocloud.io/distroless/static:nonroot
#
#   docker build --build-arg GO_IMAGE=docker.m.daocloud.io/library/golang:1.26 \
#                --build-arg BASE_IMAGE=gcr.m.daocloud.io/distroless/static:nonroot \
#                --build-arg GOPROXY=https://YOUR-GO-MODULE-PROXY,direct -t detour .
#
# (with your own config: `detour rewrite --config FILE ...`). No `# syntax=` line on purpose:
# it would make BuildKit pull a frontend image from Docker Hub.
ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static:nonroot

# Cross-compiles on the build machine's platform for the target's (docker buildx
# --platform linux/amd64,linux/arm64), so no emulation is needed.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS
ARG TARGETARCH
ARG GOPROXY
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod \
    GOPROXY=${GOPROXY:-$(go env GOPROXY)} go mod download
COPY cmd/ cmd/
COPY internal/ internal/
# -trimpath and an empty build ID make the binary a function of the source and these flags
# alone; -s -w drop the symbol table and DWARF. The same flags as `make build`.
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-$(go env GOARCH)} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X github.com/detourhq/detour/internal/cli.Version=${VERSION} -X github.com/detourhq/detour/internal/cli.Commit=${COMMIT}" \
      -o /out/detour ./cmd/detour

FROM ${BASE_IMAGE}
COPY --from=build /out/detour /detour
# distroless's "nonroot" user; also set for bases without it (scratch), and numeric so that
# runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/detour"]
CMD ["serve"]
