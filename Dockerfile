# syntax=docker/dockerfile:1
#
# driftsweep's image: the release binary on distroless (glibc, no shell, uid 65532), with the
# repository's policies/ and k8s/aia/ copied in, so that the image audits against the
# repository state it was built from.
#
#   docker build -t driftsweep:$(git describe --tags --always) \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE=$(git remote get-url origin) .
#
# The binary is built by scripts/build-release.sh, the same command scripts/test.sh builds the
# tested binary with. The builder is Debian 12 (bookworm) like the final image, so the binary
# finds the glibc it was linked against.

ARG RUST_VERSION=1.95

# ---- planner: a skeleton of the crate that changes only when the dependencies do ----------
FROM rust:${RUST_VERSION}-slim-bookworm AS planner
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# Keep Cargo.toml, Cargo.lock, the build script and a stub for every target root (declared
# with `path =` or found by Cargo's conventions). Module files are left out, so an edit to the
# code does not change the skeleton and the dependency layer below stays cached.
RUN mkdir -p /skeleton/scripts \
    && cp Cargo.toml Cargo.lock /skeleton/ \
    && cp -r .cargo /skeleton/ \
    && cp scripts/build-release.sh /skeleton/scripts/ \
    && shopt -s nullglob \
    && for f in src/main.rs src/lib.rs build.rs src/bin/*.rs src/bin/*/main.rs benches/*.rs \
            tests/*.rs tests/*/main.rs examples/*.rs examples/*/main.rs \
            $(grep -oP '^\s*path\s*=\s*"\K[^"]+' Cargo.toml); do \
        if [[ -f "$f" ]]; then \
            mkdir -p "/skeleton/$(dirname "$f")"; \
            if [[ "$f" == */lib.rs ]]; then : > "/skeleton/$f"; else echo 'fn main() {}' > "/skeleton/$f"; fi; \
        fi; \
    done

# ---- build: dependencies first (cached), then the crate itself ------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY --from=planner /skeleton/ ./
RUN scripts/build-release.sh \
    && cargo clean --release --package driftsweep
COPY . .
# `cargo clean --package` above removed the stubs' artifacts, so the crate is rebuilt from the
# real sources whatever their timestamps. The shipped copy drops what debug info remains (the
# standard library's); the symbols stay, so a panic's backtrace still names its functions.
RUN scripts/build-release.sh \
    && mkdir -p /out \
    && objcopy --strip-debug target/release/driftsweep /out/driftsweep \
    && /out/driftsweep --version

# ---- final: distroless with the C runtime the binary links (libc, libgcc_s, libm) ----------
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="driftsweep" \
      org.opencontainers.image.description="Keeps a Kubernetes cluster and its Google Cloud project equal to what one repository defines" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=build /out/driftsweep /usr/local/bin/driftsweep
# The policy's `manifests: [../k8s/aia]` resolves against the policy's folder, so the two keep
# their repository layout. The CronJob mounts its policy ConfigMap over policies/.
COPY policies/ /opt/driftsweep/policies/
COPY k8s/aia/ /opt/driftsweep/k8s/aia/

WORKDIR /opt/driftsweep
ENV DRIFTSWEEP_POLICY=/opt/driftsweep/policies/aia.yaml
# distroless's `nonroot` user (uid and gid 65532); the manifests run it as that uid too.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/driftsweep"]
CMD ["--help"]
