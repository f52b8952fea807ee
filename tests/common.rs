//! Helpers: fixtures, running the binary with a timeout, reading stores.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netcdf::Extents;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_zarrforge");

/// Outcome of one run.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `zarrforge ARGS` with `ranks` ranks (`None`: singleton, no mpirun),
/// killing it after `timeout`.
pub(crate) fn zarrforge(ranks: Option<usize>, args: &[&str], timeout: Duration) -> Run {
    zarrforge_env(ranks, args, timeout, &[])
}

/// [`zarrforge`] with more environment variables (every rank gets them).
pub(crate) fn zarrforge_env(
    ranks: Option<usize>,
    args: &[&str],
    timeout: Duration,
    env: &[(&str, &str)],
) -> Run {
    run_zarrforge(None, ranks, args, timeout, env)
}

/// [`zarrforge`] started in the directory `cwd` (relative paths in `args`
/// are relative to it).
pub(crate) fn zarrforge_in(
    cwd: &Path,
    ranks: Option<usize>,
    args: &[&str],
    timeout: Duration,
) -> Run {
    run_zarrforge(Some(cwd), ranks, args, timeout, &[])
}

fn run_zarrforge(
    cwd: Option<&Path>,
    ranks: Option<usize>,
    args: &[&str],
    timeout: Duration,
    env: &[(&str, &str)],
) -> Run {
    // A session directory of its own for every run, a singleton's too: a
    // singleton starts its own Open MPI daemon, and two started at the same
    // instant race on creating the same per-user session directory.
    let session = ompi_session_base();
    let mut cmd = match ranks {
        Some(n) => {
            let mut c = Command::new("mpirun");
            c.args(["-np", &n.to_string(), BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.env("OMPI_MCA_orte_tmpdir_base", &session);
    cmd.args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        // Tests run in parallel threads: a child spawned by one test inherits
        // the descriptor (and HDF5's flock) of a fixture another thread is
        // still writing. Readers must not trip over those stray locks.
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        // --help wraps at the terminal width: keep it fixed.
        .env_remove("COLUMNS")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("spawn zarrforge");
    let start = Instant::now();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || std::io::read_to_string(out_pipe).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(err_pipe).unwrap_or_default());
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zarrforge {args:?} with {ranks:?} ranks did not finish in {timeout:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(session);
    Run {
        code,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A session directory base of its own for one `mpirun`: Open MPI creates
/// its per-user session directory under it, and two `mpirun` started at the
/// same instant (tests run in parallel) can fail creating the same one.
///
/// The directories of a background `mpirun` ([`crate::reliability::spawn`])
/// cannot be removed while it runs: the first call of a test process
/// removes those that earlier test processes, now gone, left behind.
pub(crate) fn ompi_session_base() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_session_bases_of_gone_processes);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zf-ompi-{}-{n}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Removes the `zf-ompi-PID-N` directories of test processes that are no
/// longer running.
fn remove_session_bases_of_gone_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("zf-ompi-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub(crate) const MINUTE: Duration = Duration::from_mins(1);

/// Deterministic value generator.
pub(crate) fn val(i: usize, k: u64) -> f64 {
    let mut x =
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x % 20_000) as f64 / 100.0 - 100.0
}

/// Writes the rich netCDF-4 fixture: every numeric type, fill values,
/// packing, NaNs without fill, big-endian and contiguous storage, chunking
/// that does not divide the shape, a scalar, nested groups, an empty
/// unlimited dimension, prime and size-1 dimensions.
pub(crate) fn rich_fixture(path: &Path) {
    let mut f = netcdf::create(path).unwrap();
    f.add_attribute("title", "rich fixture").unwrap();
    f.add_attribute("levels", vec![1i32, 2, 3]).unwrap();
    f.add_attribute("version", 1.5f32).unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", 13).unwrap();
    f.add_dimension("lon", 7).unwrap();
    f.add_dimension("one", 1).unwrap();
    let nt = 10;
    {
        let mut t = f.add_variable::<f64>("time", &["time"]).unwrap();
        t.put_attribute("units", "days since 2000-01-01").unwrap();
        t.put_attribute("calendar", "noleap").unwrap();
        let v: Vec<f64> = (0..nt).map(|i| i as f64 * 0.25).collect();
        t.put_values(&v, Extents::from(0..nt)).unwrap();
    }
    let n3 = nt * 13 * 7;
    {
        let mut v = f
            .add_variable::<f32>("temp", &["time", "lat", "lon"])
            .unwrap();
        v.set_chunking(&[3, 5, 4]).unwrap();
        v.set_compression(4, true).unwrap();
        v.set_fill_value(1e20f32).unwrap();
        v.put_attribute("units", "K").unwrap();
        let mut d: Vec<f32> = (0..n3).map(|i| val(i, 1) as f32).collect();
        for i in (0..n3).step_by(17) {
            d[i] = 1e20;
        }
        v.put_values(&d, Extents::from([0..nt, 0..13, 0..7]))
            .unwrap();
    }
    {
        let mut v = f
            .add_variable::<i16>("packed", &["time", "lat", "lon"])
            .unwrap();
        v.set_fill_value(-32767i16).unwrap();
        v.put_attribute("scale_factor", 0.01f32).unwrap();
        v.put_attribute("add_offset", 273.15f32).unwrap();
        v.put_attribute("missing_value", -32767i16).unwrap();
        let mut d: Vec<i16> = (0..n3).map(|i| (val(i, 2) * 100.0) as i16).collect();
        d[5] = -32767;
        v.put_values(&d, Extents::from([0..nt, 0..13, 0..7]))
            .unwrap();
    }
    {
        let mut v = f.add_variable::<f64>("bigend", &["lat", "lon"]).unwrap();
        v.set_endianness(netcdf::Endianness::Big).unwrap();
        // A NaN attribute must survive the schema broadcast to other ranks.
        v.set_fill_value(f64::NAN).unwrap();
        let d: Vec<f64> = (0..91).map(|i| val(i, 3)).collect();
        v.put_values(&d, Extents::from([0..13, 0..7])).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("nans", &["lat"]).unwrap();
        let mut d: Vec<f32> = (0..13).map(|i| val(i, 4) as f32).collect();
        d[3] = f32::NAN;
        d[8] = f32::NAN;
        v.put_values(&d, Extents::from(0..13)).unwrap();
    }
    macro_rules! typed {
        ($name:expr, $t:ty, $fill:expr, $k:expr) => {{
            let mut v = f.add_variable::<$t>($name, &["one", "lon"]).unwrap();
            if let Some(fv) = $fill {
                v.set_fill_value::<$t>(fv).unwrap();
            }
            let d: Vec<$t> = (0..7)
                .map(|i| (val(i, $k).abs() as u64 % 100) as $t)
                .collect();
            v.put_values(&d[..6], Extents::from([0..1, 0..6])).unwrap();
        }};
    }
    typed!("v_i8", i8, Some(-1i8), 10);
    typed!("v_u8", u8, None::<u8>, 11);
    typed!("v_i16", i16, Some(-999i16), 12);
    typed!("v_u16", u16, None::<u16>, 13);
    typed!("v_i32", i32, Some(-999i32), 14);
    typed!("v_u32", u32, Some(4_000_000_000u32), 15);
    typed!("v_i64", i64, Some(-9_000_000_000i64), 16);
    typed!("v_u64", u64, None::<u64>, 17);
    typed!("v_f64", f64, Some(-1e30f64), 18);
    {
        let mut v = f.add_variable::<i32>("crs", &[]).unwrap();
        v.put_attribute("grid_mapping_name", "latitude_longitude")
            .unwrap();
        v.put_value(7i32, Extents::from(())).unwrap();
    }
    {
        let mut g = f.add_group("sub").unwrap();
        g.add_attribute("purpose", "nested").unwrap();
        g.add_unlimited_dimension("obs").unwrap();
        g.add_dimension("p", 101).unwrap();
        let mut v = g.add_variable::<f64>("inner", &["p"]).unwrap();
        let d: Vec<f64> = (0..101).map(|i| val(i, 20)).collect();
        v.put_values(&d, Extents::from(0..101)).unwrap();
        let mut e = g.add_variable::<f32>("empty", &["obs", "p"]).unwrap();
        e.put_attribute("note", "no records").unwrap();
        let mut deeper = g.add_group("deeper").unwrap();
        let mut x = deeper.add_variable::<u16>("x", &["lat"]).unwrap();
        let d: Vec<u16> = (0..13).map(|i| i as u16 * 3).collect();
        x.put_values(&d, Extents::from(0..13)).unwrap();
    }
    f.close().unwrap();
}

/// Numeric variables of the rich fixture, by path.
pub(crate) const RICH_VARS: &[&str] = &[
    "time",
    "temp",
    "packed",
    "bigend",
    "nans",
    "v_i8",
    "v_u8",
    "v_i16",
    "v_u16",
    "v_i32",
    "v_u32",
    "v_i64",
    "v_u64",
    "v_f64",
    "crs",
    "sub/inner",
    "sub/empty",
    "sub/deeper/x",
];

/// Every value of `var` from netCDF-C, as native bytes.
pub(crate) fn source_bytes(path: &Path, var: &str) -> (Vec<u64>, Vec<u8>) {
    let f = netcdf::open(path).unwrap();
    let v = f
        .variable(var)
        .unwrap_or_else(|| panic!("no variable {var}"));
    let shape: Vec<u64> = v.dimensions().iter().map(|d| d.len() as u64).collect();
    if shape.contains(&0) {
        return (shape, Vec::new());
    }
    let bytes = v.get_raw_values(Extents::from(..)).unwrap();
    (shape, bytes)
}

/// Every value of array `var` read back with zarrs, as bytes.
pub(crate) fn store_bytes(store: &Path, var: &str) -> (Vec<u64>, Vec<u8>) {
    let s = Arc::new(zarrs::filesystem::FilesystemStore::new(store).unwrap());
    let a = zarrs::array::Array::open(s, &format!("/{var}"))
        .unwrap_or_else(|e| panic!("zarrs cannot open {var} in {}: {e}", store.display()));
    let shape = a.shape().to_vec();
    if shape.contains(&0) {
        return (shape, Vec::new());
    }
    let bytes: zarrs::array::ArrayBytes<'static> =
        a.retrieve_array_subset(&a.subset_all()).unwrap();
    (shape, bytes.into_fixed().unwrap().into_owned())
}

/// A path as a command-line argument.
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Little-endian `float32` values.
pub(crate) fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Little-endian `float64` values.
pub(crate) fn f64s(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Reads a JSON file.
pub(crate) fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fresh temporary directory.
///
/// Also turns HDF5's file locks off in this test process: a child that
/// another test thread spawns while this process has a fixture open
/// inherits the descriptor and its lock, and would make this process's
/// next open of that file fail.
pub(crate) fn tmp() -> tempfile::TempDir {
    // SAFETY: every test sets the same value; HDF5 reads it at each open.
    unsafe { std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE") };
    tempfile::Builder::new()
        .prefix("zarrforge-test")
        .tempdir()
        .unwrap()
}

/// The relative paths and contents of every file under `dir`.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The lines zarrforge printed as errors (one per rank that printed; the
/// same text).
pub(crate) fn error_lines(stderr: &str) -> Vec<&str> {
    let mut v: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zarrforge: error"))
        .collect();
    v.dedup();
    v
}

/// `zarrforge ARGS` on `ranks` ranks under mpirun, each rank's exit status
/// written by a shell around it to a file of its own (stderr lines of the
/// ranks may interleave): (stderr, exit status of every rank, by rank).
pub(crate) fn per_rank(ranks: usize, args: &[&str]) -> (String, Vec<i32>) {
    let base = ompi_session_base();
    let codes_dir = tempfile::tempdir().expect("a temporary directory");
    let out = std::process::Command::new("timeout")
        .args(["-k", "5", "60", "mpirun", "-np", &ranks.to_string()])
        .args([
            "sh",
            "-c",
            // Exit 0: mpirun would kill the other ranks before they report.
            r#""$0" "$@"; echo $? > "$ZF_TEST_CODES/rank.$OMPI_COMM_WORLD_RANK""#,
            BIN,
        ])
        .args(args)
        .env("ZF_TEST_CODES", codes_dir.path())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_orte_tmpdir_base", &base)
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .output()
        .expect("timeout mpirun sh (coreutils, Open MPI)");
    let _ = std::fs::remove_dir_all(base);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let codes = (0..ranks)
        .filter_map(|r| std::fs::read_to_string(codes_dir.path().join(format!("rank.{r}"))).ok())
        .map(|c| c.trim().parse().unwrap())
        .collect();
    (stderr, codes)
}

/// `zarrforge convert --quiet -o STORE EXTRA... FILES...`, which must succeed.
pub(crate) fn convert_ok(ranks: Option<usize>, files: &[PathBuf], store: &Path, extra: &[&str]) {
    let mut args = vec!["convert", "--quiet", "-o", s(store)];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(ranks, &args, MINUTE);
    assert!(r.ok(), "{args:?}\n{}\n{}", r.stdout, r.stderr);
}

/// `zarrforge verify EXTRA... FILES... STORE` (its arguments).
pub(crate) fn verify_args<'a>(
    files: &'a [PathBuf],
    store: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|p| s(p)));
    args.push(s(store));
    args
}

/// `zarrforge verify EXTRA... FILES... STORE`.
pub(crate) fn verify_files(
    ranks: Option<usize>,
    files: &[PathBuf],
    store: &Path,
    extra: &[&str],
) -> Run {
    zarrforge(ranks, &verify_args(files, store, extra), MINUTE)
}

/// A verification that found the store identical to its sources.
pub(crate) fn assert_verified(r: &Run) {
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(": identical"), "{}", r.stdout);
}

/// A failed verification (exit status 1, "differs from its sources") whose
/// report has every `needle`.
pub(crate) fn assert_verify_reports(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("differs from its sources"),
        "{}",
        r.stderr
    );
    for n in needles {
        assert!(r.stdout.contains(n), "no {n:?} in:\n{}", r.stdout);
    }
}
