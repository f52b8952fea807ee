//! A synthetic, model-output-like netCDF-4 dataset (for `scripts/demo`,
//! tests and benchmarks): `time × lat × lon` float32 fields that are smooth
//! plus small noise rounded to 0.01 (so they compress like real data), CF
//! coordinates and attributes, source chunks of one time step, deflate and
//! shuffle.

use std::path::Path;

use netcdf::Extents;

use crate::pipeline::scan::error::SchemaError;

/// Shape of the synthetic dataset.
#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    /// Time steps.
    pub time: usize,
    /// Latitudes.
    pub lat: usize,
    /// Longitudes.
    pub lon: usize,
    /// First time value (days since 2000-01-01).
    pub t0: f64,
    /// Deflate level (0: no compression).
    pub deflate: i32,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            time: 24,
            lat: 361,
            lon: 720,
            t0: 0.0,
            deflate: 4,
        }
    }
}

/// Deterministic pseudo-random noise in [-0.5, 0.5).
fn noise(i: u64) -> f32 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    #[allow(clippy::cast_precision_loss)]
    let u = (x >> 40) as f32 / (1u64 << 24) as f32;
    u - 0.5
}

/// Writes the dataset to `path`.
///
/// # Errors
/// [`SchemaError::Create`] when netCDF-C cannot create or write the file.
#[allow(clippy::cast_precision_loss)]
#[allow(clippy::too_many_lines)] // one file written in netCDF-C's call order: define mode, then data
pub fn write(path: &Path, spec: &SynthSpec) -> Result<(), SchemaError> {
    let err = |what: &str| {
        let what = what.to_string();
        move |source| SchemaError::Create {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let mut f = netcdf::create(path).map_err(err("create"))?;
    f.add_attribute("Conventions", "CF-1.8")
        .map_err(err("attribute"))?;
    f.add_attribute("title", "zarrforge synthetic model output")
        .map_err(err("attribute"))?;
    f.add_unlimited_dimension("time")
        .map_err(err("dimension"))?;
    f.add_dimension("lat", spec.lat).map_err(err("dimension"))?;
    f.add_dimension("lon", spec.lon).map_err(err("dimension"))?;
    {
        let mut t = f
            .add_variable::<f64>("time", &["time"])
            .map_err(err("time"))?;
        t.put_attribute("units", "days since 2000-01-01 00:00:00")
            .map_err(err("time"))?;
        t.put_attribute("calendar", "proleptic_gregorian")
            .map_err(err("time"))?;
        t.put_attribute("standard_name", "time")
            .map_err(err("time"))?;
        let v: Vec<f64> = (0..spec.time).map(|i| spec.t0 + i as f64 / 24.0).collect();
        t.put_values(&v, Extents::from(0..spec.time))
            .map_err(err("time"))?;
    }
    for (name, n, lo, hi, units) in [
        ("lat", spec.lat, -90.0, 90.0, "degrees_north"),
        (
            "lon",
            spec.lon,
            0.0,
            360.0 - 360.0 / spec.lon.max(1) as f64,
            "degrees_east",
        ),
    ] {
        let mut c = f.add_variable::<f64>(name, &[name]).map_err(err(name))?;
        c.put_attribute("units", units).map_err(err(name))?;
        c.put_attribute(
            "standard_name",
            if name == "lat" {
                "latitude"
            } else {
                "longitude"
            },
        )
        .map_err(err(name))?;
        let step = if n > 1 {
            (hi - lo) / (n - 1) as f64
        } else {
            0.0
        };
        let v: Vec<f64> = (0..n).map(|i| lo + step * i as f64).collect();
        c.put_values(&v, Extents::from(0..n)).map_err(err(name))?;
    }
    let fields: [(&str, &str, &str, f32, f32); 3] = [
        ("t2m", "air_temperature", "K", 273.15, 30.0),
        ("u10", "eastward_wind", "m s-1", 0.0, 12.0),
        ("msl", "air_pressure_at_mean_sea_level", "hPa", 1013.0, 25.0),
    ];
    for (k, (name, std_name, units, base, amp)) in fields.iter().enumerate() {
        let mut v = f
            .add_variable::<f32>(name, &["time", "lat", "lon"])
            .map_err(err(name))?;
        v.set_chunking(&[1, spec.lat, spec.lon])
            .map_err(err(name))?;
        if spec.deflate > 0 {
            v.set_compression(spec.deflate, true).map_err(err(name))?;
        }
        v.set_fill_value(1e20f32).map_err(err(name))?;
        v.put_attribute("standard_name", *std_name)
            .map_err(err(name))?;
        v.put_attribute("units", *units).map_err(err(name))?;
        let mut plane = vec![0f32; spec.lat * spec.lon];
        for t in 0..spec.time {
            let tt = (spec.t0 * 24.0) as f32 + t as f32;
            for (j, row) in plane.chunks_mut(spec.lon.max(1)).enumerate() {
                let la = (j as f32 / spec.lat.max(1) as f32 - 0.5) * std::f32::consts::PI;
                for (i, x) in row.iter_mut().enumerate() {
                    let lo = i as f32 / spec.lon.max(1) as f32 * 2.0 * std::f32::consts::PI;
                    let smooth = base
                        + amp * la.cos() * (lo * (k as f32 + 1.0) + tt * 0.1).sin()
                        + 0.3 * amp * (2.0 * la).sin();
                    let idx = ((t * spec.lat + j) * spec.lon + i) as u64 + ((k as u64) << 40);
                    *x = ((smooth + noise(idx)) * 100.0).round() / 100.0;
                }
            }
            v.put_values(&plane, Extents::from([t..t + 1, 0..spec.lat, 0..spec.lon]))
                .map_err(err(name))?;
        }
    }
    f.close().map_err(err("close"))
}
