//! The C allocator's policy for a converter's large, short-lived buffers.
//!
//! A rank allocates and frees buffers of one to a few hundred MiB over and
//! over (units, decoded source chunks, exchange buffers). glibc serves
//! allocations above its mmap threshold with fresh mappings and returns
//! freed heap tops to the kernel: every round then faults in and zeroes
//! the same memory again (a fifth of the CPU time of a rechunking run).
//! Raising both thresholds keeps freed memory in the process for the next
//! buffer; the peak stays what the memory budget allows.

/// Allocations below this come from the heap, not from fresh mappings.
const MMAP_THRESHOLD: i32 = 64 << 20;

/// Free memory at the top of the heap is returned above this.
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Keeps freed buffers for reuse (glibc only; elsewhere nothing).
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once at
    // start-up, before the worker threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Peak resident memory of this process, MiB.
pub fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut u) };
    if r != 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    {
        u.ru_maxrss as f64 / 1024.0
    }
}

/// Resident memory of this process now, MiB (`VmRSS` of
/// `/proc/self/status`; 0 where there is none).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
