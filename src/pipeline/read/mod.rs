//! Source readers: each rank reads only the hyperslabs of its own units.
//!
//! netCDF-4 files are read through parallel HDF5 (MPI-IO file driver,
//! independent transfers, see [`hdf5`]); netCDF-3 files and variable-length
//! strings through netCDF-C ([`netcdf3`]).

pub mod error;
pub mod hdf5;
pub mod netcdf3;
pub mod raw;
pub mod refs;
pub mod source_codec;
pub mod unshuffle;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::schema::{DType, SourceFormat, Var};
use crate::pipeline::combine::{Dataset, Segment};
use crate::pipeline::read::error::ReadError;

/// Values of one hyperslab, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Fixed-size elements as little-endian (native) bytes.
    Fixed(Vec<u8>),
    /// Variable-length strings.
    Strings(Vec<String>),
}

/// Reads hyperslabs of one source file.
pub struct FileReader {
    hdf5: Option<hdf5::Hdf5Reader>,
    netcdf: Option<netcdf3::NetcdfReader>,
    format: SourceFormat,
    path: PathBuf,
    /// A netCDF-3 header, once parsed for virtual references.
    nc3_header: Option<crate::netcdf::header::HeaderInfo>,
    /// The file opened for its chunk index only (virtual references).
    index: Option<hdf5::Hdf5Reader>,
}

impl FileReader {
    /// A reader of `path`. Nothing is opened until the first read.
    pub fn new(path: &Path, format: SourceFormat) -> Self {
        Self {
            hdf5: None,
            netcdf: None,
            format,
            path: path.to_path_buf(),
            nc3_header: None,
            index: None,
        }
    }

    /// The source path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The HDF5 reader of a netCDF-4 file (opened on first use).
    ///
    /// # Errors
    /// [`ReadError::Hdf5Open`].
    pub fn hdf5(&mut self) -> Result<Option<&mut hdf5::Hdf5Reader>, ReadError> {
        if self.format != SourceFormat::Netcdf4 {
            return Ok(None);
        }
        crate::system::stage::reading(&self.path);
        if self.hdf5.is_none() {
            self.hdf5 = Some(hdf5::Hdf5Reader::open(&self.path)?);
        }
        Ok(self.hdf5.as_mut())
    }

    /// Reads `count` elements from `start` of `var`.
    ///
    /// # Errors
    /// A [`ReadError`] naming the file and variable.
    pub fn read(&mut self, var: &Var, start: &[u64], count: &[u64]) -> Result<Values, ReadError> {
        let n: u64 = count.iter().product();
        if n == 0 {
            return Ok(empty(var.dtype));
        }
        crate::system::stage::reading(&self.path);
        if self.format == SourceFormat::Netcdf4 && var.dtype != DType::String && !var.via_netcdf {
            if self.hdf5.is_none() {
                self.hdf5 = Some(hdf5::Hdf5Reader::open(&self.path)?);
            }
            if let Some(r) = self.hdf5.as_mut() {
                return r.read(var, start, count).map(Values::Fixed);
            }
        }
        if self.netcdf.is_none() {
            self.netcdf = Some(netcdf3::NetcdfReader::open(&self.path, self.format)?);
        }
        match self.netcdf.as_ref() {
            Some(r) => r.read(var, start, count),
            None => Err(ReadError::NetcdfOpen {
                path: self.path.clone(),
                source: crate::netcdf::library::NcError::invalid("not open"),
            }),
        }
    }
}

fn empty(dtype: DType) -> Values {
    match dtype {
        DType::String => Values::Strings(Vec::new()),
        _ => Values::Fixed(Vec::new()),
    }
}

/// Files kept open at once per rank: a rank's units are contiguous along the
/// concatenation axis, so it moves through the files in order.
pub const MAX_OPEN_FILES: usize = 4;

/// Reads output regions of a [`Dataset`]: finds the files that hold each
/// part along the concatenation axis, reads them, re-encodes time values
/// and assembles one C-order block.
pub struct Reader<'a> {
    ds: &'a Dataset,
    open: Vec<(u32, FileReader)>,
    layouts: HashMap<(u32, String), Option<Arc<raw::RawLayout>>>,
    cache: HashMap<ChunkKey, Arc<raw::Entry>>,
    order: VecDeque<(ChunkKey, usize)>,
    cached_bytes: usize,
    cache_limit: usize,
}

type ChunkKey = (u32, String, Vec<u64>);

/// A region whose stored chunks can be read raw ([`Reader::raw_region`]).
struct RawRegion {
    /// The file, by its index among the inputs.
    file: u32,
    /// How the file's dataset is chunked and filtered.
    layout: Arc<raw::RawLayout>,
    /// The region's start in the file's dataset.
    local: Vec<u64>,
}

/// Most source chunks one region reads raw; more go through `H5Dread`.
const MAX_RAW_CHUNKS_PER_REGION: u64 = 4096;

/// Decoded source chunks a rank keeps (besides those held by units in
/// flight): enough for the source chunks that neighbouring output units
/// share.
pub const CHUNK_CACHE_BYTES: usize = 192 << 20;

/// A region being read: ready, or raw chunks to decode on a worker thread.
pub enum Pending {
    /// Values read already.
    Ready(Values),
    /// Raw chunks to decode and assemble ([`raw::RawJob::finish`]).
    Raw(raw::RawJob),
}

impl Pending {
    /// The values (decoding raw chunks on the calling thread).
    ///
    /// # Errors
    /// [`ReadError`] when a chunk cannot be decoded.
    pub fn finish(self) -> Result<Values, ReadError> {
        match self {
            Self::Ready(v) => Ok(v),
            Self::Raw(job) => job.finish().map(Values::Fixed),
        }
    }
}

impl<'a> Reader<'a> {
    /// A reader of `ds`; files are opened on first use.
    pub fn new(ds: &'a Dataset) -> Self {
        Self {
            ds,
            open: Vec::new(),
            layouts: HashMap::new(),
            cache: HashMap::new(),
            order: VecDeque::new(),
            cached_bytes: 0,
            cache_limit: CHUNK_CACHE_BYTES,
        }
    }

    /// Limits the decoded source chunks kept besides those of units in
    /// flight (default [`CHUNK_CACHE_BYTES`]).
    pub fn set_cache_limit(&mut self, bytes: usize) {
        self.cache_limit = bytes;
    }

    /// Starts reading the output region `start`/`count` of variable
    /// `index`: a region inside one chunked, deflated netCDF-4 dataset is
    /// returned as raw chunks to decode on a worker thread; anything else is
    /// read now.
    ///
    /// # Errors
    /// A [`ReadError`] naming the file and variable.
    pub fn prepare(
        &mut self,
        index: usize,
        start: &[u64],
        count: &[u64],
    ) -> Result<Pending, ReadError> {
        if let Some(job) = self.try_raw(index, start, count)? {
            return Ok(Pending::Raw(job));
        }
        self.read(index, start, count).map(Pending::Ready)
    }

    /// Where the region `start`/`count` of variable `index` lies when its
    /// stored chunks can be read raw: its file, the dataset's chunk layout
    /// and the region in the file's coordinates. `None` for a region that
    /// takes the `H5Dread` path.
    fn raw_region(
        &mut self,
        index: usize,
        start: &[u64],
        count: &[u64],
    ) -> Result<Option<RawRegion>, ReadError> {
        let ds = self.ds;
        let src = &ds.sources[index];
        if count.contains(&0) || src.var.dtype == DType::String || src.var.via_netcdf {
            return Ok(None);
        }
        // One file, no time re-encoding.
        let Place::In(file, local) = place(src, start, count) else {
            return Ok(None);
        };
        let key = (file, src.var.path.clone());
        let layout = if let Some(l) = self.layouts.get(&key) {
            l.clone()
        } else {
            let l = match self.file(file)?.hdf5()? {
                Some(h) => h.raw_layout(&src.var)?.map(Arc::new),
                None => None,
            };
            self.layouts.insert(key.clone(), l.clone());
            l
        };
        let Some(layout) = layout else {
            return Ok(None);
        };
        let Some(h) = self.file(file)?.hdf5()? else {
            return Ok(None);
        };
        // Regions beyond the dataset's extent (short records) take the
        // H5Dread path, which fills them.
        let extent = h.extent(&src.var)?;
        if extent.len() != count.len()
            || local
                .iter()
                .zip(count)
                .zip(&extent)
                .any(|((s, c), e)| s + c > *e)
        {
            return Ok(None);
        }
        // Source chunks far smaller than the region (a tiny chunk shape, or
        // a damaged one) are read by HDF5 itself: one lookup per chunk here
        // would cost more than the data.
        let touched = local
            .iter()
            .zip(count)
            .zip(&layout.chunk)
            .fold(1u64, |n, ((&s, &c), &k)| {
                let k = k.max(1);
                n.saturating_mul((s + c).div_ceil(k) - s / k)
            });
        if touched > MAX_RAW_CHUNKS_PER_REGION {
            return Ok(None);
        }
        Ok(Some(RawRegion {
            file,
            layout,
            local,
        }))
    }

    /// The source chunk at `origin` of the region's dataset, read now
    /// (`H5Dread_chunk`): not decoded, not kept.
    fn read_stored(
        &mut self,
        index: usize,
        file: u32,
        origin: &[u64],
    ) -> Result<raw::RawChunk, ReadError> {
        let ds = self.ds;
        let var = &ds.sources[index].var;
        let h = self
            .file(file)?
            .hdf5()?
            .ok_or_else(|| ReadError::Hdf5Open {
                path: path_in(ds, file),
                msg: "not an HDF5 file".into(),
            })?;
        h.read_raw(var, origin)
    }

    fn try_raw(
        &mut self,
        index: usize,
        start: &[u64],
        count: &[u64],
    ) -> Result<Option<raw::RawJob>, ReadError> {
        let Some(RawRegion {
            file,
            layout,
            local,
        }) = self.raw_region(index, start, count)?
        else {
            return Ok(None);
        };
        let var = self.ds.sources[index].var.path.clone();
        let mut chunks = Vec::new();
        for origin in raw::chunks_of(&layout.chunk, &local, count) {
            let ck: ChunkKey = (file, var.clone(), origin.clone());
            let entry = if let Some(e) = self.cache.get(&ck) {
                e.clone()
            } else {
                let e = Arc::new(raw::Entry::new(self.read_stored(index, file, &origin)?));
                self.insert(ck, e.clone(), layout.chunk_bytes());
                e
            };
            chunks.push((origin, entry));
        }
        Ok(Some(raw::RawJob {
            layout,
            chunks,
            start: local,
            count: count.to_vec(),
            path: self.path_of(file),
            var,
        }))
    }

    /// The stored bytes of the source chunk that is exactly the output unit
    /// `start`/`count` of shape `unit`, when they can be copied as they are:
    /// one file, no time re-encoding, the unit aligned with a written source
    /// chunk of the same shape, and the source filters equal to `codec` (a
    /// [`crate::cli::config::Codec::Stored`]) with none skipped for this chunk.
    /// The chunk is read into the buffer returned (a chunk another region
    /// read already is copied from the cache): no other unit needs it.
    ///
    /// # Errors
    /// A [`ReadError`] naming the file and variable.
    pub fn stored_chunk(
        &mut self,
        index: usize,
        start: &[u64],
        count: &[u64],
        unit: &[u64],
        codec: &crate::cli::config::Codec,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let crate::cli::config::Codec::Stored { shuffle, level } = codec else {
            return Ok(None);
        };
        let Some(RawRegion {
            file,
            layout: l,
            local,
        }) = self.raw_region(index, start, count)?
        else {
            return Ok(None);
        };
        let want: Vec<raw::RawFilter> = shuffle
            .map(|_| raw::RawFilter::Shuffle)
            .into_iter()
            .chain(level.map(|_| raw::RawFilter::Deflate))
            .collect();
        // Aligned with a chunk and no larger: the region is in that one chunk
        // (smaller at the dataset's end, where the stored chunk is whole).
        let one = local
            .iter()
            .zip(count)
            .zip(&l.chunk)
            .all(|((s, c), k)| s % k == 0 && c <= k);
        if l.chunk != unit || l.filters != want || !one {
            return Ok(None);
        }
        let ck: ChunkKey = (file, self.ds.sources[index].var.path.clone(), local);
        let stored = match self.cache.get(&ck) {
            Some(e) => e.stored(),
            None => Some(self.read_stored(index, file, &ck.2)?),
        };
        Ok(match stored {
            Some(Some((bytes, 0))) => Some(bytes),
            _ => None,
        })
    }

    fn insert(&mut self, key: ChunkKey, entry: Arc<raw::Entry>, bytes: usize) {
        self.cache.insert(key.clone(), entry);
        self.order.push_back((key, bytes));
        self.cached_bytes += bytes;
        while self.cached_bytes > self.cache_limit && self.order.len() > 1 {
            if let Some((old, b)) = self.order.pop_front() {
                self.cache.remove(&old);
                self.cached_bytes -= b;
            }
        }
    }

    fn file(&mut self, index: u32) -> Result<&mut FileReader, ReadError> {
        if let Some(k) = self.open.iter().position(|(i, _)| *i == index) {
            let item = self.open.remove(k);
            self.open.push(item);
        } else {
            let f = self
                .ds
                .files
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .ok_or_else(|| ReadError::Hdf5Open {
                    path: PathBuf::from(format!("input #{index}")),
                    msg: "no such input".into(),
                })?;
            if self.open.len() >= MAX_OPEN_FILES {
                self.open.remove(0);
            }
            self.open.push((index, FileReader::new(&f.path, f.format)));
        }
        self.open
            .last_mut()
            .map(|(_, r)| r)
            .ok_or_else(|| ReadError::Hdf5Open {
                path: PathBuf::from(format!("input #{index}")),
                msg: "no reader".into(),
            })
    }

    /// Reads the output region `start`/`count` of variable `index` (in
    /// [`crate::model::schema::Schema::vars`] order).
    ///
    /// # Errors
    /// A [`ReadError`] naming the file and variable.
    pub fn read(
        &mut self,
        index: usize,
        start: &[u64],
        count: &[u64],
    ) -> Result<Values, ReadError> {
        let ds = self.ds;
        let src = &ds.sources[index];
        if let Some(labels) = &src.inline {
            return Ok(inline_values(labels, src.var.dtype, start, count));
        }
        if let Some(stack) = &src.stack {
            return self.read_stacked(src, stack, start, count);
        }
        self.read_segments(&src.var, src.axis, &src.segments, start, count, false)
    }

    /// Reads a variable stacked along a new outermost dimension: each
    /// member's part from its own files, a member without files as fill.
    fn read_stacked(
        &mut self,
        src: &crate::pipeline::combine::VarSource,
        stack: &crate::pipeline::combine::Stack,
        start: &[u64],
        count: &[u64],
    ) -> Result<Values, ReadError> {
        let (Some((&m0, inner_start)), Some((&mc, inner_count))) =
            (start.split_first(), count.split_first())
        else {
            return Ok(empty(src.var.dtype));
        };
        let axis = stack.axis;
        let mut out = filled(&src.var, count, true);
        let size = src.var.dtype.size();
        let mut origin = vec![0u64; count.len()];
        for m in m0..m0 + mc {
            let segments = stack
                .members
                .get(usize::try_from(m).unwrap_or(usize::MAX))
                .map_or(&[][..], Vec::as_slice);
            if segments.is_empty() {
                continue;
            }
            let part =
                self.read_segments(&src.var, axis, segments, inner_start, inner_count, true)?;
            origin[0] = m - m0;
            let mut c = vec![1];
            c.extend_from_slice(inner_count);
            match (&mut out, part) {
                (Values::Fixed(dst), Values::Fixed(p)) => {
                    crate::model::block::place(dst, count, &p, &c, &origin, size);
                }
                (Values::Strings(dst), Values::Strings(p)) => {
                    crate::model::block::place_items(dst, count, &p, &c, &origin);
                }
                _ => {
                    return Err(ReadError::KindMismatch {
                        path: self.path_of(segments[0].file),
                        var: src.var.path.clone(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Reads the region `start`/`count` of `var` from the files of
    /// `segments` (along `axis`), gaps as the fill value (the array's, for
    /// the grid's missing `cells`).
    fn read_segments(
        &mut self,
        var: &Var,
        axis: Option<usize>,
        all: &[Segment],
        start: &[u64],
        count: &[u64],
        cells: bool,
    ) -> Result<Values, ReadError> {
        let Some(k) = axis else {
            let file = all.first().map_or(0, |s| s.file);
            return self.file(file)?.read(var, start, count);
        };
        let n: u64 = count.iter().product();
        if n == 0 {
            return Ok(empty(var.dtype));
        }
        let (lo, hi) = (start[k], start[k] + count[k]);
        let segments: Vec<&Segment> = crate::pipeline::combine::segments_in(all, lo, hi).collect();
        // The common case: one file holds the whole region.
        if let [seg] = segments.as_slice() {
            if seg.start <= lo && hi <= seg.start + seg.len {
                let mut s = start.to_vec();
                s[k] = lo - seg.start;
                let v = self.file(seg.file)?.read(var, &s, count)?;
                return recode(v, var, seg, self.path_of(seg.file));
            }
        }
        let size = var.dtype.size();
        let mut out = filled(var, count, cells);
        for seg in segments {
            let a = lo.max(seg.start);
            let b = hi.min(seg.start + seg.len);
            if a >= b {
                continue;
            }
            let mut s = start.to_vec();
            s[k] = a - seg.start;
            let mut c = count.to_vec();
            c[k] = b - a;
            let mut origin = vec![0u64; count.len()];
            origin[k] = a - lo;
            let part = self.file(seg.file)?.read(var, &s, &c)?;
            let part = recode(part, var, seg, self.path_of(seg.file))?;
            match (&mut out, part) {
                (Values::Fixed(dst), Values::Fixed(p)) => {
                    crate::model::block::place(dst, count, &p, &c, &origin, size);
                }
                (Values::Strings(dst), Values::Strings(p)) => {
                    crate::model::block::place_items(dst, count, &p, &c, &origin);
                }
                _ => {
                    return Err(ReadError::KindMismatch {
                        path: self.path_of(seg.file),
                        var: var.path.clone(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn path_of(&self, file: u32) -> PathBuf {
        path_in(self.ds, file)
    }
}

/// The path of input `file` of `ds` (empty for an index it does not have).
fn path_in(ds: &Dataset, file: u32) -> PathBuf {
    ds.files
        .get(usize::try_from(file).unwrap_or(usize::MAX))
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

/// A region of `var` holding its fill value (empty strings for strings):
/// its `_FillValue`, else netCDF's default for a gap along the axis, or
/// the array's fill value for a missing cell of a grid (`cells`: what Zarr
/// readers take for missing, NaN for floats).
fn filled(var: &Var, count: &[u64], cells: bool) -> Values {
    let total = usize::try_from(count.iter().product::<u64>()).unwrap_or(0);
    if var.dtype == DType::String {
        Values::Strings(vec![String::new(); total])
    } else if cells {
        Values::Fixed(crate::model::schema::pad_bytes(var).repeat(total))
    } else {
        let fill = crate::model::schema::fill_bytes(var)
            .unwrap_or_else(|| var.dtype.netcdf_default_fill());
        Values::Fixed(fill.repeat(total))
    }
}

/// The region `start`/`count` of a coordinate given in the dataset.
fn inline_values(
    labels: &[crate::pipeline::combine::grid::Label],
    dtype: crate::model::schema::DType,
    start: &[u64],
    count: &[u64],
) -> Values {
    use crate::pipeline::combine::grid::Label;
    let lo = start
        .first()
        .map_or(0, |&s| usize::try_from(s).unwrap_or(usize::MAX));
    // A scalar (no dimension) has one value.
    let n = count
        .first()
        .map_or(1, |&c| usize::try_from(c).unwrap_or(0));
    let part = labels
        .get(lo..lo.saturating_add(n).min(labels.len()))
        .unwrap_or(&[]);
    if part.iter().all(|l| matches!(l, Label::Int(_))) {
        let int = |l: &Label| match l {
            Label::Int(i) => *i,
            Label::Text(_) => 0,
        };
        Values::Fixed(if dtype == crate::model::schema::DType::I32 {
            part.iter()
                .flat_map(|l| i32::try_from(int(l)).unwrap_or(0).to_le_bytes())
                .collect()
        } else {
            part.iter().flat_map(|l| int(l).to_le_bytes()).collect()
        })
    } else {
        Values::Strings(part.iter().map(ToString::to_string).collect())
    }
}

/// Where a region of a variable lies in its input files.
pub(crate) enum Place {
    /// In file `.0`, from element `.1` of it, with no time re-encoding.
    In(u32, Vec<u64>),
    /// In no file (a gap along the concatenation dimension).
    Gap,
    /// Across files, or in one whose values are re-encoded.
    Spread,
}

/// Where the region `start`/`count` of `src` lies.
pub(crate) fn place(
    src: &crate::pipeline::combine::VarSource,
    start: &[u64],
    count: &[u64],
) -> Place {
    if src.stack.is_some() || src.inline.is_some() {
        return Place::Spread;
    }
    let Some(k) = src.axis else {
        return Place::In(src.segments.first().map_or(0, |s| s.file), start.to_vec());
    };
    let (lo, hi) = (start[k], start[k] + count[k]);
    let segs: Vec<&Segment> = src.segments_in(lo, hi).collect();
    match segs.as_slice() {
        [seg] if seg.start <= lo && hi <= seg.start + seg.len && seg.recode.is_none() => {
            let mut s = start.to_vec();
            s[k] = lo - seg.start;
            Place::In(seg.file, s)
        }
        [] => Place::Gap,
        _ => Place::Spread,
    }
}

/// Applies a segment's time re-encoding to the values read from its file.
/// Fill values are left as they are.
fn recode(values: Values, var: &Var, seg: &Segment, path: PathBuf) -> Result<Values, ReadError> {
    let Some(r) = seg.recode else {
        return Ok(values);
    };
    let Values::Fixed(mut b) = values else {
        return Ok(values);
    };
    let fill = crate::model::schema::fill_bytes(var);
    let inexact = |value: String| ReadError::Recode {
        path: path.clone(),
        var: var.path.clone(),
        value,
    };
    macro_rules! each {
        ($t:ty, $f:expr) => {{
            let w = std::mem::size_of::<$t>();
            for chunk in b.chunks_exact_mut(w) {
                if fill.as_deref() == Some(&*chunk) {
                    continue;
                }
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(chunk);
                let x = <$t>::from_le_bytes(a);
                let y: $t = $f(x).ok_or_else(|| inexact(x.to_string()))?;
                chunk.copy_from_slice(&y.to_le_bytes());
            }
        }};
    }
    match var.dtype {
        DType::I32 => each!(i32, |x| r.apply_i32(x)),
        DType::I64 => each!(i64, |x| r.apply_i64(x)),
        DType::F32 => each!(f32, |x| Some(r.apply_f32(x))),
        DType::F64 => each!(f64, |x| Some(r.apply_f64(x))),
        _ => return Err(inexact("(unsupported type)".into())),
    }
    Ok(Values::Fixed(b))
}
