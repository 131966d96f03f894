# syntax=docker/dockerfile:1
# The notatcompany image for those with a container daemon. Without one,
# `make image` assembles the same image (same binaries, same user, same
# labels) from the same compile step: image/cmd/mkimage.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/notatcompany/notatcompany:dev .
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=
WORKDIR /src
COPY . .
# Static binaries of image.Binaries for the target architecture, stamped
# with the build (--version, nac_build_info).
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go run ./image/cmd/mkimage -compile-only -root . -out /out -arch "${TARGETARCH}" \
      -version "${VERSION}" -commit "${COMMIT}" ${DATE:+-date "${DATE}"}

# CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=
LABEL org.opencontainers.image.title="notatcompany" \
      org.opencontainers.image.description="Keeps Dynamics 365 contacts' Not at Company flag current (ingest, validator, writer on NATS JetStream)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.source="https://github.com/notatcompany/notatcompany"
COPY --from=build /out/ /
USER 65532:65532
