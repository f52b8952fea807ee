# Shared environment for zarrforge's scripts (sourced, not run).
# Points the build at Debian's parallel netCDF/HDF5 unless already set, and
# lets OpenMPI run as root and with more ranks than cores (CI containers).
export NETCDF_DIR="${NETCDF_DIR:-/usr/lib/x86_64-linux-gnu/netcdf/mpi}"
export HDF5_DIR="${HDF5_DIR:-/usr/lib/x86_64-linux-gnu/hdf5/openmpi}"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
# Quiet OpenMPI's transport probing in containers without high-speed networks.
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"

ZF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZF_VENV="${ZF_VENV:-$ZF_ROOT/.venv-test}"
export ZF_ICECHUNK_VENV="${ZF_ICECHUNK_VENV:-$ZF_ROOT/.venv-icechunk}"

# Creates the Python venv used by the interop tests (idempotent): xarray,
# zarr-python and tensorstore, the Python readers the stores are tested with.
zf_venv() {
    if [ ! -x "$ZF_VENV/bin/python" ] || ! "$ZF_VENV/bin/python" -c "import xarray, zarr, netCDF4, dask, h5py, s3fs, tensorstore" 2>/dev/null; then
        echo "==> creating Python venv $ZF_VENV (xarray, zarr>=3, netCDF4, tensorstore)" >&2
        python3 -m venv "$ZF_VENV"
        "$ZF_VENV/bin/pip" install -q --upgrade pip
        "$ZF_VENV/bin/pip" install -q xarray "zarr>=3" netCDF4 numpy dask h5py s3fs tensorstore
    fi
}

# Installs the JavaScript reader of the interop tests (zarrita, the version
# pinned in tests/interop/package-lock.json) into tests/interop/node_modules
# (idempotent; needs node and npm: scripts/install-deps --node).
zf_node() {
    local dir="$ZF_ROOT/tests/interop"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "==> installing zarrita into tests/interop/node_modules (npm ci)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

# A Python >= 3.12 (icechunk 2.x needs one): $ZF_ICECHUNK_PYTHON if set, else
# python3.13, python3.12 or python3 on the PATH, else pyenv's. Prints its path.
zf_python312() {
    local c
    for c in ${ZF_ICECHUNK_PYTHON:-} python3.13 python3.12 python3 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3.1[2-9]; do
        # pyenv's shims exist on the PATH but fail for a version not selected.
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# Creates the Python venv of the Icechunk tests, benchmarks and readers
# (idempotent): icechunk 2.3, xarray 2026.9, zarr-python 3, netCDF4 1.7.2,
# h5py, Dask and moto's S3 server, on a Python >= 3.12. Exports
# ZF_ICECHUNK_VENV. netCDF4 stays below 1.7.3: from 1.7.3 to 1.7.5.1 its
# wheels crash (SIGSEGV) opening a netCDF-4 file with variable-length
# strings again in a process that has read it through xarray and opened
# an Icechunk store (tests/interop/virtual_compare.py on make_fixtures.py's
# strings.nc, awkward_fills.nc and awkward_structure.nc).
zf_icechunk_venv() {
    local venv="$ZF_ICECHUNK_VENV" py
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import icechunk, xarray, zarr, numcodecs, netCDF4, h5py, dask, moto
assert icechunk.__version__.startswith('2.3.') and netCDF4.__version__ == '1.7.2'" 2>/dev/null; then
        return 0
    fi
    if ! py="$(zf_python312)"; then
        echo "zf_icechunk_venv: needs Python >= 3.12 (python3.12 or python3.13 on the PATH, or ZF_ICECHUNK_PYTHON=/path/to/python3.12); see docs/install.md, \"Icechunk: Python >= 3.12 for the tests and readers\"" >&2
        return 1
    fi
    echo "==> creating Python venv $venv from $py (icechunk 2.3, xarray 2026.9, zarr>=3, netCDF4 1.7.2)" >&2
    "$py" -m venv --clear "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "icechunk==2.3.*" "xarray==2026.9.*" "zarr>=3" numcodecs "netCDF4==1.7.2" h5py hdf5plugin numpy \
        dask "moto[server]"
}

# A venv with moto's S3 server, for the lock race test only (tests/s3.rs):
# unlike s3s-fs, its create-only PUT is atomic under a race. Exports
# ZF_MOTO_SERVER (idempotent).
zf_moto() {
    local venv="$ZF_ROOT/.venv-moto"
    if [ ! -x "$venv/bin/moto_server" ]; then
        echo "==> creating Python venv $venv (moto[server])" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip
        "$venv/bin/pip" install -q "moto[server]"
    fi
    export ZF_MOTO_SERVER="$venv/bin/moto_server"
}

# Creates the Python venv of the bitinformation reference tests (idempotent):
# NumPy, numcodecs (BitRound), xbitinfo (its python implementation of the
# bitwise real information), netCDF4, xarray and Dask. xbitinfo 0.0.7 itself
# pins numpy<2.4 and numcodecs<0.16.4 and pulls matplotlib, tqdm and zarr;
# pip resolves those pins without help. Its julia backend is optional and
# not installed (the tests use implementation="python"). matplotlib (also
# one of xbitinfo's) draws scripts/plot-bitinfo's figure.
zf_bitinfo_venv() {
    local venv="$ZF_ROOT/.venv-bitinfo"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import numpy, numcodecs, xbitinfo, netCDF4, xarray, dask, matplotlib" 2>/dev/null; then
        return 0
    fi
    echo "==> creating Python venv $venv (numpy, numcodecs, xbitinfo, netCDF4, xarray, dask, matplotlib)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q numpy numcodecs xbitinfo netCDF4 xarray dask matplotlib
    "$venv/bin/python" -c "import numpy, numcodecs, xbitinfo, netCDF4, xarray, dask, matplotlib"
}
