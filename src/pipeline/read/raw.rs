//! Raw chunk reads: decompression off the HDF5 lock, on the encoder threads.
//!
//! HDF5 runs its filter pipeline (inflate, unshuffle) inside `H5Dread`,
//! under the library's global lock, so a rank decompresses on one thread at
//! zlib's speed. For the common netCDF-4 layout — chunked, deflate and/or
//! shuffle, little-endian — the main thread instead reads each source
//! chunk's stored bytes with `H5Dread_chunk` (plain I/O), and the encoder
//! threads inflate them with libdeflate, unshuffle and copy the part each
//! output unit needs. A decoded chunk is shared by every unit that needs it
//! (an output chunk usually spans several source chunks and a source chunk
//! several output chunks): it is decoded once, by the first thread that
//! needs it, and kept in a bounded cache. Anything else (other filters,
//! big-endian data, regions beyond the dataset's extent, strings) takes the
//! `H5Dread` path.

use std::sync::{Arc, Mutex, OnceLock};

use crate::model::block::copy_block;
use crate::pipeline::read::error::ReadError;
use crate::pipeline::read::unshuffle::unshuffle;

/// A filter of the raw path, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFilter {
    /// Byte shuffle.
    Shuffle,
    /// zlib stream (HDF5 "deflate").
    Deflate,
}

/// How a dataset's chunks are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLayout {
    /// Chunk shape.
    pub chunk: Vec<u64>,
    /// Filters, in the order they were applied when writing.
    pub filters: Vec<RawFilter>,
    /// Element size in bytes.
    pub elem: usize,
    /// The fill value, as little-endian bytes of one element.
    pub fill: Vec<u8>,
    /// The deflate level, if the source deflates.
    pub level: Option<u32>,
}

impl RawLayout {
    /// Bytes of one decoded chunk.
    pub fn chunk_bytes(&self) -> usize {
        usize::try_from(self.chunk.iter().product::<u64>()).unwrap_or(0) * self.elem
    }
}

/// Stored bytes of one chunk and the mask of skipped filters; `None` for a
/// chunk that was never written (it reads as the fill value).
pub type RawChunk = Option<(Vec<u8>, u32)>;

/// One source chunk: its stored bytes until a thread decodes them.
#[derive(Debug)]
pub struct Entry {
    raw: Mutex<Option<RawChunk>>,
    decoded: OnceLock<Result<Arc<Vec<u8>>, String>>,
}

impl Entry {
    /// An entry holding a chunk's stored bytes.
    pub fn new(raw: RawChunk) -> Self {
        Self {
            raw: Mutex::new(Some(raw)),
            decoded: OnceLock::new(),
        }
    }

    /// A copy of the stored bytes, if nobody decoded them yet.
    pub fn stored(&self) -> Option<RawChunk> {
        self.raw.lock().ok().and_then(|g| g.clone())
    }

    /// The decoded chunk as an owned buffer, decoded now without keeping it,
    /// when nobody decoded it yet; `None` when it was (or is being) decoded
    /// for sharing, and for a chunk whose bytes are gone. For an entry no
    /// one else holds.
    fn decode_once(&self, layout: &RawLayout) -> Option<Result<Vec<u8>, String>> {
        if self.decoded.get().is_some() {
            return None;
        }
        let raw = self.raw.lock().ok()?.take()?;
        Some(decode(raw, layout))
    }

    /// The decoded chunk (decoding it on first use).
    fn get(&self, layout: &RawLayout) -> Result<Arc<Vec<u8>>, String> {
        self.decoded
            .get_or_init(|| {
                let raw = self
                    .raw
                    .lock()
                    .map_err(|_| "poisoned chunk entry".to_string())?
                    .take()
                    .ok_or_else(|| "chunk bytes already taken".to_string())?;
                decode(raw, layout).map(Arc::new)
            })
            .clone()
    }
}

/// Undoes the filter pipeline of one chunk.
///
/// # Errors
/// A message when the zlib stream is corrupt or the size is wrong.
pub fn decode(raw: RawChunk, layout: &RawLayout) -> Result<Vec<u8>, String> {
    let n = layout.chunk_bytes();
    let Some((mut data, mask)) = raw else {
        return Ok(layout.fill.repeat(n / layout.elem.max(1)));
    };
    // The filters to undo, last applied first.
    let undo: Vec<RawFilter> = layout
        .filters
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| mask & (1 << i) == 0)
        .map(|(_, f)| *f)
        .collect();
    if undo == [RawFilter::Deflate, RawFilter::Shuffle] && n <= SCRATCH_BYTES {
        // netCDF-4's usual pipeline: inflate into this thread's scratch
        // buffer, which the unshuffle reads at once, so no buffer is
        // allocated and cleared for the intermediate bytes.
        return SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            inflate(&data, &mut scratch[..n])?;
            Ok(unshuffle(&scratch[..n], layout.elem))
        });
    }
    for f in undo {
        data = match f {
            RawFilter::Deflate => {
                let mut out = vec![0u8; n];
                inflate(&data, &mut out)?;
                out
            }
            RawFilter::Shuffle => unshuffle(&data, layout.elem),
        };
    }
    if data.len() != n {
        return Err(format!("chunk of {} bytes, expected {n}", data.len()));
    }
    Ok(data)
}

/// Largest decoded chunk whose inflated bytes go through a thread's
/// scratch buffer (which stays allocated while the thread lives).
const SCRATCH_BYTES: usize = 16 << 20;

thread_local! {
    /// A thread's buffer for inflated bytes that are unshuffled at once.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Inflates the zlib stream `data` into all of `out`.
///
/// # Errors
/// A message when the stream is corrupt or does not fill `out` exactly.
fn inflate(data: &[u8], out: &mut [u8]) -> Result<(), String> {
    let n = out.len();
    let got = libdeflater::Decompressor::new()
        .zlib_decompress(data, out)
        .map_err(|e| format!("inflate: {e}"))?;
    if got != n {
        return Err(format!("inflate: {got} bytes, expected {n}"));
    }
    Ok(())
}

/// A region to assemble from decoded chunks, on any thread.
#[derive(Debug)]
pub struct RawJob {
    /// Layout of the dataset.
    pub layout: Arc<RawLayout>,
    /// Chunk origins (element coordinates) and their entries.
    pub chunks: Vec<(Vec<u64>, Arc<Entry>)>,
    /// Region start in the dataset.
    pub start: Vec<u64>,
    /// Region extent.
    pub count: Vec<u64>,
    /// For messages.
    pub path: std::path::PathBuf,
    /// For messages.
    pub var: String,
}

impl RawJob {
    /// Decodes the chunks (those not decoded yet) and copies the region.
    ///
    /// # Errors
    /// [`ReadError::Hdf5`] naming the file and variable.
    pub fn finish(&self) -> Result<Vec<u8>, ReadError> {
        // A region that is exactly one chunk which no cache or other region
        // holds (an exchange block): its decoded bytes are the region's.
        if let [(origin, entry)] = self.chunks.as_slice() {
            if Arc::strong_count(entry) == 1
                && *origin == self.start
                && self.count == self.layout.chunk
            {
                if let Some(decoded) = entry.decode_once(&self.layout) {
                    return decoded.map_err(|msg| ReadError::Decode {
                        path: self.path.clone(),
                        var: self.var.clone(),
                        origin: origin.clone(),
                        msg,
                    });
                }
            }
        }
        let elem = self.layout.elem;
        let n = usize::try_from(self.count.iter().product::<u64>()).unwrap_or(0);
        let mut out = vec![0u8; n * elem];
        for (origin, entry) in &self.chunks {
            let chunk = entry.get(&self.layout).map_err(|msg| ReadError::Decode {
                path: self.path.clone(),
                var: self.var.clone(),
                origin: origin.clone(),
                msg,
            })?;
            // Intersection of the chunk and the region.
            let d = self.start.len();
            let mut lo = vec![0u64; d];
            let mut ext = vec![0u64; d];
            for k in 0..d {
                let a = self.start[k].max(origin[k]);
                let b = (self.start[k] + self.count[k]).min(origin[k] + self.layout.chunk[k]);
                lo[k] = a;
                ext[k] = b.saturating_sub(a);
            }
            if ext.contains(&0) && d > 0 {
                continue;
            }
            let src_off: Vec<u64> = lo.iter().zip(origin).map(|(l, o)| l - o).collect();
            let dst_off: Vec<u64> = lo.iter().zip(&self.start).map(|(l, s)| l - s).collect();
            copy_block(
                &chunk,
                &self.layout.chunk,
                &src_off,
                &mut out,
                &self.count,
                &dst_off,
                &ext,
                elem,
            );
        }
        Ok(out)
    }
}

/// Origins of the chunks that overlap the region `start`/`count`.
pub fn chunks_of(chunk: &[u64], start: &[u64], count: &[u64]) -> Vec<Vec<u64>> {
    let d = chunk.len();
    if d == 0 {
        return vec![Vec::new()];
    }
    if count.contains(&0) {
        return Vec::new();
    }
    let first: Vec<u64> = (0..d).map(|k| start[k] / chunk[k]).collect();
    let last: Vec<u64> = (0..d)
        .map(|k| (start[k] + count[k] - 1) / chunk[k])
        .collect();
    let mut out = Vec::new();
    let mut idx = first.clone();
    loop {
        out.push(idx.iter().zip(chunk).map(|(i, c)| i * c).collect());
        let mut k = d;
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            if idx[k] < last[k] {
                idx[k] += 1;
                break;
            }
            idx[k] = first[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-byte elements stored with no filter, in chunks of `chunk`.
    fn plain_bytes(chunk: &[u64]) -> Arc<RawLayout> {
        Arc::new(RawLayout {
            chunk: chunk.to_vec(),
            filters: vec![],
            elem: 1,
            fill: vec![0],
            level: None,
        })
    }

    #[test]
    fn chunks_overlapping_a_region() {
        let c = chunks_of(&[2, 3], &[1, 2], &[2, 2]);
        assert_eq!(c, vec![vec![0, 0], vec![0, 3], vec![2, 0], vec![2, 3]]);
        assert_eq!(chunks_of(&[4], &[4], &[4]), vec![vec![4]]);
        assert!(chunks_of(&[4], &[0], &[0]).is_empty());
    }

    #[test]
    fn a_region_that_is_one_chunk_reads_the_same_held_or_not() {
        // A 2x3 chunk at (2, 3) of bytes 0..6, the region exactly that chunk.
        let layout = plain_bytes(&[2, 3]);
        let job = |entry: Arc<Entry>| RawJob {
            layout: layout.clone(),
            chunks: vec![(vec![2, 3], entry)],
            start: vec![2, 3],
            count: vec![2, 3],
            path: "x.nc".into(),
            var: "v".into(),
        };
        let bytes: Vec<u8> = (0..6).collect();
        // Held by the region alone: its decoded bytes are the region's.
        let alone = job(Arc::new(Entry::new(Some((bytes.clone(), 0)))));
        assert_eq!(alone.finish().unwrap(), bytes);
        // Also held by a cache: copied, and still there for the next region.
        let shared = Arc::new(Entry::new(Some((bytes.clone(), 0))));
        let held = job(shared.clone());
        assert_eq!(held.finish().unwrap(), bytes);
        assert_eq!(job(shared).finish().unwrap(), bytes);
        // A region inside the chunk is copied out of it.
        let part = RawJob {
            start: vec![3, 4],
            count: vec![1, 2],
            ..job(Arc::new(Entry::new(Some((bytes.clone(), 0)))))
        };
        assert_eq!(part.finish().unwrap(), vec![4, 5]);
    }

    #[test]
    fn assembles_a_region_from_chunks() {
        // A 4x4 array of bytes 0..16 in chunks of 2x2; region rows 1..3, cols 1..4.
        let layout = plain_bytes(&[2, 2]);
        let array: Vec<u8> = (0..16).collect();
        let start = vec![1, 1];
        let count = vec![2, 3];
        let chunks = chunks_of(&layout.chunk, &start, &count)
            .into_iter()
            .map(|o| {
                let mut c = Vec::new();
                for r in 0..2 {
                    for q in 0..2 {
                        c.push(array[usize::try_from((o[0] + r) * 4 + o[1] + q).unwrap()]);
                    }
                }
                (o, Arc::new(Entry::new(Some((c, 0)))))
            })
            .collect();
        let job = RawJob {
            layout,
            chunks,
            start,
            count,
            path: "x.nc".into(),
            var: "v".into(),
        };
        assert_eq!(job.finish().unwrap(), vec![5, 6, 7, 9, 10, 11]);
    }

    #[test]
    fn decodes_deflate_and_shuffle() {
        use std::io::Write;
        let plain: Vec<u8> = (0..64u16).flat_map(u16::to_le_bytes).collect();
        let n = plain.len() / 2;
        let mut shuffled = vec![0u8; plain.len()];
        for i in 0..n {
            shuffled[i] = plain[2 * i];
            shuffled[n + i] = plain[2 * i + 1];
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        z.write_all(&shuffled).unwrap();
        let raw = z.finish().unwrap();
        let layout = RawLayout {
            chunk: vec![64],
            filters: vec![RawFilter::Shuffle, RawFilter::Deflate],
            elem: 2,
            fill: vec![0, 0],
            level: Some(4),
        };
        assert_eq!(decode(Some((raw.clone(), 0)), &layout).unwrap(), plain);
        // Deflate skipped for this chunk (mask bit 1).
        assert_eq!(decode(Some((shuffled, 0b10)), &layout).unwrap(), plain);
        assert_eq!(decode(None, &layout).unwrap(), vec![0u8; 128]);
        assert!(decode(Some((raw[..10].to_vec(), 0)), &layout).is_err());
    }
}
