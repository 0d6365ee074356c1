# Berth as a container image, the drop-in for registry:2:
#   docker run -d -p 5000:5000 -v registry-data:/var/lib/registry berth:latest
#
# Build it with `bash deploy/build-image.sh TAG`, not `docker build` alone:
# the build runs no RUN step (it needs no network and no shell), so the
# script first stages the release binary, the shared libraries it links
# (glibc, libgcc_s, the loader), CA roots and the files below into
# deploy/stage/, the only part of the repository .dockerignore lets in.
FROM scratch

# The binary (which embeds the registry guest), its libraries, CA roots for
# upstream registries and S3, /etc/passwd and /etc/group naming nobody,
# nsswitch.conf, registry:2's default config.yml, and /tmp (mode 1777).
COPY deploy/stage/rootfs/ /
# An empty directory, so the volume's mount point belongs to the user the
# server runs as; docker copies that ownership into a fresh named volume.
COPY --chown=65534:65534 deploy/stage/volume/ /var/lib/registry/

# Not root: nothing here needs it, and port 5000 is not privileged.
USER 65534:65534
VOLUME ["/var/lib/registry"]
EXPOSE 5000
# Berth finishes in-flight requests on SIGTERM and exits 0.
STOPSIGNAL SIGTERM
# No shell or curl in the image: the binary asks its own /health. The start
# period covers compiling the guest on a fresh volume (cached under
# /var/lib/registry/.cache afterwards).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/berth", "health", "--config", "/etc/docker/registry/config.yml"]
# Arguments given to `docker run IMAGE ...` are added to these, e.g.
# `--read-only`; the configuration stays at registry:2's path.
ENTRYPOINT ["/usr/local/bin/berth", "serve", "--config", "/etc/docker/registry/config.yml"]

LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="An OCI container registry whose protocol runs as a sandboxed Wasm component; a drop-in for registry:2" \
      org.opencontainers.image.licenses="Apache-2.0"
