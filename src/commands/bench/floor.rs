//! The compute floor of a conversion, measured on this machine: one
//! thread's time to decode the source chunks and to encode the same bytes
//! with the output codec, on a sample (the first input file), scaled to the
//! bytes of the whole conversion.

use std::time::Instant;

use crate::cli::config::{Codec, ConvertConfig};
use crate::commands::convert::Report;
use crate::error::Error;
use crate::model::schema::SourceFormat;
use crate::pipeline::plan::ArrayPlan;
use crate::pipeline::read::{FileReader, Values};
use crate::store::encode::ArrayEncoder;

/// Bytes of source data sampled at most.
const SAMPLE_BYTES: u64 = 256 << 20;

/// One thread's seconds to decode and encode all of `report.bytes_read`.
///
/// # Errors
/// Errors reading the sample.
pub fn one_thread_seconds(cfg: &ConvertConfig, report: &Report) -> Result<f64, Error> {
    let files = crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref())?;
    let Some(first) = files.first() else {
        return Ok(0.0);
    };
    let schema = crate::pipeline::scan::structure::read_schema(first, true)?;
    if schema.format != SourceFormat::Netcdf4 {
        return Ok(0.0);
    }
    let codec = match &cfg.codec {
        Codec::Source => return Ok(0.0),
        c => c.clone(),
    };
    let mut reader = FileReader::new(first, schema.format);
    let tmp = std::env::temp_dir().join(format!("zarrforge-floor-{}", std::process::id()));
    let (mut decode_s, mut encode_s, mut bytes) = (0.0, 0.0, 0u64);
    'vars: for v in schema.vars() {
        let Some(h) = reader.hdf5()? else { break };
        let Some(layout) = h.raw_layout(v)? else {
            continue;
        };
        let n = (layout.chunk_bytes() / layout.elem.max(1)) as u64;
        let a = ArrayPlan::new(0, "floor".into(), v.dtype, vec![n], vec![n], None, 0)
            .with_codec(codec.clone());
        let mut flat = v.clone();
        flat.dims = vec!["n".into()];
        flat.shape = vec![n];
        let enc = ArrayEncoder::new(&tmp, &flat, &a, cfg.format)?;
        let extent = h.extent(v)?;
        let zero = vec![0; extent.len()];
        for origin in crate::pipeline::read::raw::chunks_of(&layout.chunk, &zero, &extent) {
            let raw = h.read_raw(v, &origin)?;
            let t = Instant::now();
            let data = crate::pipeline::read::raw::decode(raw, &layout).map_err(|msg| {
                crate::pipeline::read::error::ReadError::Decode {
                    path: first.clone(),
                    var: v.path.clone(),
                    origin: origin.clone(),
                    msg,
                }
            })?;
            decode_s += t.elapsed().as_secs_f64();
            bytes += data.len() as u64;
            let t = Instant::now();
            enc.encode(&[0], &[n], Values::Fixed(data))?;
            encode_s += t.elapsed().as_secs_f64();
            if bytes >= SAMPLE_BYTES {
                break 'vars;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if bytes == 0 {
        return Ok(0.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let scale = report.bytes_read as f64 / bytes as f64;
    Ok((decode_s + encode_s) * scale)
}
