# Multi-stage build of the localnvme image.
#
# There is no Docker engine on the development machines: hack/image/build.sh assembles the
# SAME image as a docker-archive tarball (localnvme.local/localnvme:<VERSION>) for the local
# cluster, layer for layer:
#   FROM debian:bookworm-slim + RUN apt-get install   ->  hack/image/rootfs.sh: debootstrap
#        --variant=minbase bookworm with the packages of the `apt-get install` line below
#        (rootfs.sh reads them from this file: keep them on that one line), upgraded from
#        bookworm-updates/-security, docs/man/locales/apt lists trimmed like the slim image
#   COPY hack/image/lvm.conf                           ->  the same file, its own layer
#   COPY hack/image/localnvme-shell.profile            ->  the same file, its own layer
#   COPY --from=build localnvme                        ->  `make build` (same -ldflags), top layer
#   ENTRYPOINT, PATH                                   ->  the same config
# A change here needs the same change in hack/image/build.sh or rootfs.sh, and vice versa.
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
# LVM without udev, dmeventd or lvmpolld in the container: see the comments in the file.
COPY hack/image/lvm.conf /etc/lvm/lvm.conf
# The profile of the lvm shells the node plugin runs lvm commands in (--lvm-shell); the plugin
# writes it itself when it is missing or differs (pkg/lvm.ShellProfile).
COPY hack/image/localnvme-shell.profile /etc/lvm/profile/localnvme-shell.profile
COPY --from=build /out/localnvme /usr/local/bin/localnvme
ENTRYPOINT ["/usr/local/bin/localnvme"]
