//! What a run ran with: versions of zarrforge and its libraries, the
//! command line and the output's filesystem, so that reports of runs on
//! different machines can be compared.

use std::ffi::CStr;
use std::path::Path;

use serde::Serialize;

/// Versions, command and filesystem of a run (rank 0's view).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunEnvironment {
    /// zarrforge's version.
    pub zarrforge: String,
    /// HDF5 library version.
    pub hdf5: String,
    /// netCDF-C library version.
    pub netcdf: String,
    /// MPI library version (its name and version, e.g. `Open MPI v4.1.4`).
    pub mpi: String,
    /// The command line.
    pub command: Vec<String>,
    /// Filesystem type of the output's directory (`lustre`, `gpfs`,
    /// `ext4`, ...).
    pub output_filesystem: String,
}

impl RunEnvironment {
    /// The environment of this process for output `output`.
    pub fn detect(output: &Path) -> Self {
        let (a, b, c) = hdf5::library_version();
        Self {
            zarrforge: env!("CARGO_PKG_VERSION").to_string(),
            hdf5: format!("{a}.{b}.{c}"),
            netcdf: netcdf_version(),
            mpi: mpi::environment::library_version()
                .map(|v| {
                    let first = v.lines().next().unwrap_or_default();
                    let name = first.split(',').next().unwrap_or_default();
                    name.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_string()
                })
                .unwrap_or_default(),
            command: std::env::args().collect(),
            output_filesystem: filesystem_type(output),
        }
    }
}

extern "C" {
    // netCDF-C's version text (static storage).
    fn nc_inq_libvers() -> *const std::os::raw::c_char;
}

fn netcdf_version() -> String {
    // SAFETY: nc_inq_libvers returns a pointer to a static NUL-terminated
    // string (or null); it is only read.
    unsafe {
        let p = nc_inq_libvers();
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p)
            .to_string_lossy()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// The type of the filesystem holding `path` (or its nearest existing
/// ancestor), by its magic number.
pub fn filesystem_type(path: &Path) -> String {
    if let Some(scheme) = path
        .to_str()
        .and_then(|s| s.split_once("://"))
        .map(|(s, _)| s)
    {
        return format!("{scheme} (object storage)");
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(existing) = abs.ancestors().find(|p| p.exists()) else {
        return "unknown".into();
    };
    let Ok(c) = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: `buf` is plain data written by statfs; `c` is a valid
    // NUL-terminated path.
    let magic = unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &raw mut buf) != 0 {
            return "unknown".into();
        }
        #[allow(clippy::cast_sign_loss, clippy::unnecessary_cast)]
        {
            buf.f_type as u64
        }
    };
    fs_name(magic)
}

/// Name of a filesystem magic number (Linux `statfs.f_type`).
fn fs_name(magic: u64) -> String {
    match magic {
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x1983_0326 => "beegfs",
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x2FC1_2FC1 => "zfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x00C3_6400 => "ceph",
        0x794C_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        0xAAD7_AAEA => "panfs",
        0x0122_1994 => "dax",
        0x5346_544E => "ntfs",
        _ => return format!("0x{magic:x}"),
    }
    .to_string()
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil from days (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Seconds since this process started: the dynamic loader, MPI's start-up
/// and whatever ran before the caller. From `/proc` (the `starttime` of
/// `/proc/self/stat` against `/proc/uptime`), so at the clock tick's
/// resolution (10 ms on Linux); `None` where `/proc` does not say.
pub fn seconds_since_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    // SAFETY: sysconf only reads a system constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    since_start(&stat, &uptime, tick)
}

/// [`seconds_since_start`] from the text of `/proc/self/stat` and of
/// `/proc/uptime` and the clock ticks per second.
fn since_start(stat: &str, uptime: &str, ticks_per_s: i64) -> Option<f64> {
    if ticks_per_s <= 0 {
        return None;
    }
    // The command's name (field 2) is in parentheses and may hold spaces
    // and parentheses: the fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `starttime` is field 22; `rest` starts at field 3.
    let start: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    let started = start as f64 / ticks_per_s as f64;
    Some((up - started).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_since_start_reads_proc() {
        // Field 22 of this line is 1000 ticks: 10 s after boot at 100 Hz.
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1000 99 98";
        assert_eq!(since_start(stat, "12.50 3.00\n", 100), Some(2.5));
        // A clock that has not reached the start (a coarse uptime) is 0.
        assert_eq!(since_start(stat, "9.99 1.0", 100), Some(0.0));
        assert_eq!(since_start(stat, "12.5", 0), None);
        assert_eq!(since_start("4242 (x) S 1 2", "12.5", 100), None);
        assert_eq!(since_start("no name here", "12.5", 100), None);
        // This process: running, and not for days.
        if let Some(s) = seconds_since_start() {
            assert!((0.0..86_400.0).contains(&s), "{s}");
        }
    }

    #[test]
    fn filesystems_are_named() {
        assert_eq!(fs_name(0x0BD0_0BD0), "lustre");
        assert_eq!(fs_name(0x4750_4653), "gpfs");
        assert_eq!(fs_name(0x1234), "0x1234");
        // A path that does not exist yet is on its parent's filesystem.
        let t = filesystem_type(Path::new("/tmp/zarrforge-does-not-exist/a/b.zarr"));
        assert_ne!(t, "unknown");
    }

    #[test]
    fn utc_now_is_iso() {
        let t = utc_now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20"));
        assert!(t.ends_with('Z'));
    }
}
