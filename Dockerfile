# kmslab runtime image: the four static binaries and nothing else (no shell, no libc, no
# package manager). Nothing is pulled: the base is `scratch`, so this builds offline with
# the classic builder. The build context is the directory scripts/build-image.sh prepares
# (target/docker-context/rootfs holds bin/kms-host, bin/kms-client, bin/slmgr, bin/kmslab
# and empty /tmp and /data). With internet access, Dockerfile.multistage builds the same
# image from the sources instead (docs/compose.md).
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
# Daemons keep their SQLite registry, zone data and client state under /data (a volume in
# docker-compose.yml); /tmp is there for anything that wants a temporary directory.
WORKDIR /data
LABEL org.opencontainers.image.title="kmslab" \
      org.opencontainers.image.description="KMS activation lab: kms-host, kms-client, slmgr, kmslab"
# The admin API is the healthcheck target of each service in docker-compose.yml; kms-host
# answers /healthz on --admin, kms-client too. No default command: every service names its
# binary.
EXPOSE 1688 8688 8689 53/udp 53/tcp
