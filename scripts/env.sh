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
