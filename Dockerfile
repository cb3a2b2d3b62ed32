# Builds the rotor image: `docker build -t rotor .` from the repository root.
# The binary links glibc dynamically, so the runtime image is distroless cc on Debian 12,
# the release the build image is based on.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other member must be present for cargo to read the workspace.
COPY emulators ./emulators
RUN cargo build --release --locked -p rotor && cp target/release/rotor /rotor

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rotor /rotor
USER 65532:65532
ENTRYPOINT ["/rotor"]
CMD ["run"]
