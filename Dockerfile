# Multi-stage build of the localnvme image. There is no Docker engine on the development
# machines; the local cluster (not built yet) will assemble the same image as a tarball.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -ldflags "-X main.version=${VERSION}" -o /out/localnvme ./cmd/localnvme

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends lvm2 thin-provisioning-tools e2fsprogs xfsprogs util-linux \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/localnvme /usr/local/bin/localnvme
ENTRYPOINT ["/usr/local/bin/localnvme"]
