# dap-sidecar images. Base images are build arguments, so the same file builds from the
# usual registries (the defaults) or from local images (the tests build their own).
#
#   docker build -t dap-sidecar .                          # the sidecar (default target)
#   docker build -t dap-sidecar-demo-app --target demo-app .  # the demo app under debugpy
#
# CARGO_FLAGS lets an offline build use vendored crates, e.g.
#   --build-arg CARGO_FLAGS="--offline --config source.crates-io.replace-with='vendored' --config source.vendored.directory='vendor'"

ARG BUILDER_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
ARG CARGO_FLAGS=""
RUN cargo build --release --locked ${CARGO_FLAGS} \
    && cp target/release/dap-sidecar /dap-sidecar

# The demo app: demo/app at /usr/src/app, run under debugpy by `dap-sidecar launch`
# (DAP_SIDECAR_WAIT=true makes it wait for a debugger). Your own app image needs the same
# three things: debugpy, the dap-sidecar binary (or debugpy's own flags), and the command.
FROM ${PYTHON_IMAGE} AS demo-app
ARG DEBUGPY_VERSION=1.8.22
ARG PIP_FLAGS=""
COPY demo/wheels* /wheels/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ${PIP_FLAGS} "debugpy==${DEBUGPY_VERSION}" \
    && rm -rf /wheels
COPY --from=build /dap-sidecar /usr/local/bin/dap-sidecar
COPY demo/app/ /usr/src/app/
WORKDIR /usr/src/app
ENV PYTHONUNBUFFERED=1
CMD ["dap-sidecar", "launch", "--", "/opt/venv/bin/python", "main.py"]

# The sidecar: one static-ish binary on a minimal, non-root base.
FROM ${RUNTIME_IMAGE} AS sidecar
COPY --from=build /dap-sidecar /usr/local/bin/dap-sidecar
USER 65532:65532
EXPOSE 5678 5680
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/usr/local/bin/dap-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dap-sidecar"]
