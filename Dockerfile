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
ARG PYTHON314_IMAGE=python:3.14-slim

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

# The sidecar: one static-ish binary on a minimal, non-root base (the default target).
FROM ${RUNTIME_IMAGE} AS sidecar
COPY --from=build /dap-sidecar /usr/local/bin/dap-sidecar
USER 65532:65532
EXPOSE 5678 5680
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/usr/local/bin/dap-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dap-sidecar"]

# Attach on demand (README "Attach on demand"): debugpy's cp314 wheel unpacked for the
# sidecar to copy into a running Python 3.14 app. pip only downloads and unpacks it here
# (--target); no Python is in the sidecar image.
FROM ${PYTHON_IMAGE} AS debugpy-cp314
ARG DEBUGPY_VERSION=1.8.22
ARG DEBUGPY_PLATFORM=manylinux_2_34_x86_64
ARG PIP_FLAGS=""
COPY demo/wheels* /wheels/
RUN python3 -m venv /tmp/pip \
    && /tmp/pip/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_FLAGS} \
       --no-compile --target /debugpy --python-version 3.14 --implementation cp --only-binary=:all: \
       --platform "${DEBUGPY_PLATFORM}" "debugpy==${DEBUGPY_VERSION}" \
    && rm -rf /tmp/pip /wheels

# The demo app as an unprepared app: plain `python3.14 main.py`, no debugpy, no sidecar.
FROM ${PYTHON314_IMAGE} AS demo-app-plain
COPY demo/app/ /usr/src/app/
WORKDIR /usr/src/app
CMD ["python3.14", "-u", "main.py"]

# The sidecar with debugpy for attach on demand. It runs as root: ptrace rights need
# CAP_SYS_PTRACE in its effective set (compose `cap_add: [SYS_PTRACE]`), which Docker and
# Kubernetes give a non-root user only as a bounding capability, never effective.
FROM ${RUNTIME_IMAGE} AS sidecar-ondemand
COPY --from=build /dap-sidecar /usr/local/bin/dap-sidecar
COPY --from=debugpy-cp314 /debugpy/debugpy /usr/share/dap-sidecar/debugpy/debugpy
ENV DAP_SIDECAR_INJECT__MODE=auto
USER 0:0
EXPOSE 5678 5680
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/usr/local/bin/dap-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dap-sidecar"]

# The default target (the last stage) is the plain sidecar. The attach-on-demand stages
# sit after it so that a builder without BuildKit, which builds every stage up to the
# target, needs no Python 3.14 base for `--target sidecar` or `--target demo-app`.
FROM sidecar AS default
