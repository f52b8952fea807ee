//! `zarrforge verify`: compares a store with its sources, value by value.
//!
//! The sources are scanned and combined exactly as `convert` does (same
//! flags, same recipe), which gives the expected structure; the store's
//! saved state gives its layout. Every rank then takes its share of the
//! store's units (the same partition as a conversion), reads each unit's
//! region from the sources (time re-encoding included) and the stored unit
//! (decoded with the array's own codec chain), and compares every element:
//! bitwise, except that any two NaNs are equal. The metadata is compared
//! too: every array's document must equal the one zarrforge would write,
//! and the structure, types, shapes and attributes must match the sources
//! (the global `history` attribute aside).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::append::StoreState;
use crate::config::{ConvertConfig, ZarrFormat};
use crate::convert::{from_root, prepare_job};
use crate::dataset::same_value;
use crate::error::{AppendError, Error, SchemaError};
use crate::mpi_ctx::MpiCtx;
use crate::plan::{ArrayPlan, Plan};
use crate::read::{Reader, Values};
use crate::schema::{DType, Var};
use crate::write::chunks::ArrayEncoder;
use crate::write::metadata;

/// Mismatches listed per rank at most.
const FIRST: usize = 5;

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The store.
    pub store: PathBuf,
    /// Source files.
    pub files: usize,
    /// Arrays compared.
    pub arrays: usize,
    /// Units (chunks or shards) compared.
    pub units: u64,
    /// Elements compared.
    pub values: u64,
    /// Elements that differ.
    pub mismatches: u64,
    /// Metadata differences.
    pub metadata: Vec<String>,
    /// The first value mismatches (a few per rank).
    pub first: Vec<String>,
    /// Wall seconds.
    pub seconds: f64,
}

impl VerifyReport {
    /// Whether the store equals the sources.
    pub fn ok(&self) -> bool {
        self.mismatches == 0 && self.metadata.is_empty()
    }

    /// Summary and the first differences, one per line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "zarrforge verify: {} vs {} file(s): {} arrays, {} units, {} values compared in {:.2} s: {}",
            self.store.display(),
            self.files,
            self.arrays,
            self.units,
            self.values,
            self.seconds,
            if self.ok() {
                "identical".to_string()
            } else {
                format!(
                    "{} value(s) differ, {} metadata difference(s)",
                    self.mismatches,
                    self.metadata.len()
                )
            }
        );
        for m in self.metadata.iter().take(20) {
            out.push_str("\n  metadata: ");
            out.push_str(m);
        }
        for m in &self.first {
            out.push_str("\n  value: ");
            out.push_str(m);
        }
        out
    }
}

/// Loads the saved state of a store written by zarrforge.
///
/// # Errors
/// [`AppendError::NotAppendable`] (reused: not a zarrforge store, not
/// committed, unreadable state).
pub fn load_state(store: &Path) -> Result<StoreState, AppendError> {
    let bad = |reason: String| AppendError::NotAppendable {
        path: store.to_path_buf(),
        reason,
    };
    if !crate::write::store::is_our_store(store) {
        return Err(bad("not a store written by zarrforge".into()));
    }
    let p = store
        .join(crate::write::store::MARKER_DIR)
        .join(crate::append::STATE_FILE);
    let bytes = std::fs::read(&p).map_err(|e| bad(format!("{}: {e}", p.display())))?;
    let (state, _): (StoreState, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| bad(format!("{}: {e}", p.display())))?;
    if !store
        .join(crate::write::store::root_key(state.format))
        .is_file()
    {
        return Err(bad("the store was never committed".into()));
    }
    Ok(state)
}

/// Verifies `cfg.output` against the sources of `cfg` on all ranks.
///
/// # Errors
/// Errors reading either side (not differences: those are in the report).
pub fn verify(ctx: &MpiCtx, cfg: &ConvertConfig) -> Result<VerifyReport, Error> {
    let t0 = Instant::now();
    let store = cfg.output.clone();
    let state: StoreState = from_root(ctx, || Ok(load_state(&store)?))?;
    let mut src_cfg = cfg.clone();
    src_cfg.append = false;
    src_cfg.history = None;
    let job = prepare_job(ctx, &src_cfg)?;
    let ds = &job.ds;
    let (arrays, metadata) = expected(&store, ds, &state);
    let metadata = if ctx.is_root() { metadata } else { Vec::new() };
    let plan = Plan::renumber(arrays, ctx.size());
    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let local = crate::convert::guarded(|| compare_units(&store, ds, &plan, rank, state.format));
    let (units, values, mismatches, first) = ctx.agree(local)?;
    let units = ctx.sum_u64(units);
    let values = ctx.sum_u64(values);
    let mismatches = ctx.sum_u64(mismatches);
    let payload = bincode::serde::encode_to_vec(&first, bincode::config::standard())
        .map_err(|e| Error::Schema(SchemaError::Exchange(e.to_string())))?;
    let mut all_first = Vec::new();
    for part in ctx.gather_bytes(payload).unwrap_or_default() {
        if let Ok((v, _)) =
            bincode::serde::decode_from_slice::<Vec<String>, _>(&part, bincode::config::standard())
        {
            all_first.extend(v);
        }
    }
    Ok(VerifyReport {
        store,
        files: job.files,
        arrays: plan.arrays.len(),
        units,
        values,
        mismatches,
        metadata,
        first: all_first,
        seconds: ctx.max_f64(t0.elapsed().as_secs_f64()),
    })
}

/// The expected arrays (the store's layouts at the sources' shapes) and the
/// metadata differences.
fn expected(
    store: &Path,
    ds: &crate::dataset::Dataset,
    state: &StoreState,
) -> (Vec<ArrayPlan>, Vec<String>) {
    let mut diffs = Vec::new();
    let have: Vec<&Var> = state.schema.vars();
    let want: Vec<&Var> = ds.schema.vars();
    for h in &have {
        if !want.iter().any(|w| w.path == h.path) {
            diffs.push(format!(
                "array '{}' is in the store but not in the sources",
                h.path
            ));
        }
    }
    let mut arrays = Vec::new();
    for (i, w) in want.iter().enumerate() {
        let Some(j) = have.iter().position(|h| h.path == w.path) else {
            diffs.push(format!(
                "variable '{}' of the sources is not in the store",
                w.path
            ));
            continue;
        };
        let h = have[j];
        if h.dtype != w.dtype || h.dims != w.dims || h.shape != w.shape {
            diffs.push(format!(
                "'{}': store {} {:?} {:?}, sources {} {:?} {:?}",
                w.path,
                h.dtype.nc_name(),
                h.dims,
                h.shape,
                w.dtype.nc_name(),
                w.dims,
                w.shape
            ));
            continue;
        }
        compare_attrs(&format!("'{}'", w.path), &h.attrs, &w.attrs, &mut diffs);
        let Some(layout) = state.arrays.get(j) else {
            diffs.push(format!("'{}': no layout in the store's state", w.path));
            continue;
        };
        let a = ArrayPlan::new(
            i,
            w.path.clone(),
            w.dtype,
            w.shape.clone(),
            layout.chunks.clone(),
            layout.shards.clone(),
            0,
        )
        .with_codec(layout.codec.clone());
        // The stored document must be the one zarrforge writes for it.
        let (key, doc) = match state.format {
            ZarrFormat::V3 => ("zarr.json", metadata::array_v3(h, &a, &a.codec, false)),
            ZarrFormat::V2 => (".zarray", metadata::array_v2(h, &a, &a.codec)),
        };
        let path = store.join(&w.path).join(key);
        match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            Some(stored) if stored == doc => {}
            Some(_) => diffs.push(format!(
                "{}: differs from the expected metadata",
                path.display()
            )),
            None => diffs.push(format!("{}: missing or unreadable", path.display())),
        }
        arrays.push(a);
    }
    let mut groups_have = state.schema.root.all_groups();
    groups_have.insert(0, &state.schema.root);
    let mut groups_want = ds.schema.root.all_groups();
    groups_want.insert(0, &ds.schema.root);
    for g in &groups_want {
        match groups_have.iter().find(|x| x.path == g.path) {
            Some(x) => compare_attrs(
                &if g.path.is_empty() {
                    "global".to_string()
                } else {
                    format!("group '{}'", g.path)
                },
                &x.attrs,
                &g.attrs,
                &mut diffs,
            ),
            None => diffs.push(format!("group '{}' is not in the store", g.path)),
        }
    }
    (arrays, diffs)
}

fn compare_attrs(
    what: &str,
    have: &[crate::schema::Attr],
    want: &[crate::schema::Attr],
    diffs: &mut Vec<String>,
) {
    for w in want.iter().filter(|a| a.name != "history") {
        match have.iter().find(|h| h.name == w.name) {
            Some(h) if same_value(&h.value, &w.value) => {}
            Some(h) => diffs.push(format!(
                "{what} attribute '{}': store {}, sources {}",
                w.name,
                h.value.display(),
                w.value.display()
            )),
            None => diffs.push(format!(
                "{what} attribute '{}' is missing from the store",
                w.name
            )),
        }
    }
    for h in have.iter().filter(|a| a.name != "history") {
        if !want.iter().any(|w| w.name == h.name) {
            diffs.push(format!(
                "{what} attribute '{}' is only in the store",
                h.name
            ));
        }
    }
}

type Compared = (u64, u64, u64, Vec<String>);

fn compare_units(
    store: &Path,
    ds: &crate::dataset::Dataset,
    plan: &Plan,
    rank: usize,
    format: ZarrFormat,
) -> Result<Compared, Error> {
    let vars = ds.schema.vars();
    let mut encoders = Vec::with_capacity(plan.arrays.len());
    for a in &plan.arrays {
        encoders.push(ArrayEncoder::new(store, vars[a.var], a, format)?);
    }
    let mut reader = Reader::new(ds);
    let (mut units, mut values, mut mismatches) = (0u64, 0u64, 0u64);
    let mut first = Vec::new();
    for unit in plan.units_of(rank) {
        let a = &plan.arrays[unit.array];
        let enc = &encoders[unit.array];
        let (start, count) = a.unit_region(&unit.indices);
        let n = count.iter().product::<u64>();
        units += 1;
        values += n;
        if n == 0 {
            continue;
        }
        let src = reader.read(a.var, &start, &count)?;
        let full = enc.unit_shape().to_vec();
        let total = usize::try_from(full.iter().product::<u64>()).unwrap_or(0);
        let stored = match enc.load(&unit.indices) {
            Ok(Some(v)) => v,
            Ok(None) if a.dtype == DType::String => Values::Strings(vec![String::new(); total]),
            Ok(None) => Values::Fixed(enc.pad().repeat(total)),
            Err(e) => {
                // A damaged unit: every value in it counts as different.
                mismatches += n;
                if first.len() < FIRST {
                    first.push(format!(
                        "{}{:?}: {}",
                        a.path,
                        start,
                        crate::error::chain(&e)
                    ));
                }
                continue;
            }
        };
        let mut note = |k: usize, s: String, z: String| {
            mismatches += 1;
            if first.len() < FIRST {
                let idx = element_index(&start, &count, k);
                first.push(format!("{}{idx:?}: source {s}, store {z}", a.path));
            }
        };
        match (src, stored) {
            (Values::Fixed(s), Values::Fixed(z)) => {
                let size = a.dtype.size();
                let z = crop(&z, &count, &full, size);
                for (k, (x, y)) in s.chunks_exact(size).zip(z.chunks_exact(size)).enumerate() {
                    if x != y && !(both_nan(a.dtype, x, y)) {
                        note(k, show(a.dtype, x), show(a.dtype, y));
                    }
                }
            }
            (Values::Strings(s), Values::Strings(z)) => {
                let mut region = vec![String::new(); s.len()];
                crate::block::for_each_row(&count, &full, &vec![0; count.len()], |r, f, len| {
                    region[r..r + len].clone_from_slice(&z[f..f + len]);
                });
                for (k, (x, y)) in s.iter().zip(&region).enumerate() {
                    if x != y {
                        note(k, format!("{x:?}"), format!("{y:?}"));
                    }
                }
            }
            _ => note(0, "values".into(), "a different kind of values".into()),
        }
    }
    Ok((units, values, mismatches, first))
}

/// The `count` region at the origin of a `full` block.
fn crop(full_bytes: &[u8], count: &[u64], full: &[u64], size: usize) -> Vec<u8> {
    if count == full {
        return full_bytes.to_vec();
    }
    let n = usize::try_from(count.iter().product::<u64>()).unwrap_or(0);
    let mut out = vec![0u8; n * size];
    crate::block::for_each_row(count, full, &vec![0; count.len()], |r, f, len| {
        out[r * size..(r + len) * size].copy_from_slice(&full_bytes[f * size..(f + len) * size]);
    });
    out
}

fn element_index(start: &[u64], count: &[u64], mut k: usize) -> Vec<u64> {
    let mut idx = vec![0u64; count.len()];
    for d in (0..count.len()).rev() {
        let c = usize::try_from(count[d].max(1)).unwrap_or(1);
        idx[d] = start[d] + (k % c) as u64;
        k /= c;
    }
    idx
}

fn both_nan(dtype: DType, x: &[u8], y: &[u8]) -> bool {
    match dtype {
        DType::F32 => {
            let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_nan();
            f(x) && f(y)
        }
        DType::F64 => {
            let f = |b: &[u8]| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                f64::from_le_bytes(a).is_nan()
            };
            f(x) && f(y)
        }
        _ => false,
    }
}

fn show(dtype: DType, b: &[u8]) -> String {
    macro_rules! num {
        ($t:ty) => {{
            let mut a = [0u8; std::mem::size_of::<$t>()];
            a.copy_from_slice(&b[..std::mem::size_of::<$t>()]);
            <$t>::from_le_bytes(a).to_string()
        }};
    }
    match dtype {
        DType::I8 => num!(i8),
        DType::U8 | DType::Char => num!(u8),
        DType::I16 => num!(i16),
        DType::U16 => num!(u16),
        DType::I32 => num!(i32),
        DType::U32 => num!(u32),
        DType::I64 => num!(i64),
        DType::U64 => num!(u64),
        DType::F32 => num!(f32),
        DType::F64 => num!(f64),
        DType::String => format!("{b:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_region_of_an_edge_unit() {
        // 2x2 region of a 3x3 block.
        let full = [1u8, 2, 9, 3, 4, 9, 9, 9, 9];
        assert_eq!(crop(&full, &[2, 2], &[3, 3], 1), vec![1, 2, 3, 4]);
        assert_eq!(element_index(&[10, 20], &[2, 3], 4), vec![11, 21]);
        let nan = f32::NAN.to_le_bytes();
        let other_nan = f32::from_bits(0x7fc0_0001).to_le_bytes();
        assert!(both_nan(DType::F32, &nan, &other_nan));
        assert!(!both_nan(DType::F32, &nan, &1f32.to_le_bytes()));
    }
}
