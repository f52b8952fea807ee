//! The header of a netCDF-3 file (classic, 64-bit offset, CDF5) checked
//! against the file before netCDF-C opens it.
//!
//! netCDF-C returns zeros for every byte a header promises beyond the end of
//! the file, so a truncated file (a model killed while writing, a copy cut
//! short) would convert into a store full of invented zeros. This parser
//! reads the header on its own, checks every count against the bytes left
//! before it sizes anything, checks names are UTF-8, and computes the file
//! size the header needs: the end of the last fixed-size variable and of the
//! last record. A file shorter than that is refused.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The result of a check: the file size the header needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Format version: 1 (classic), 2 (64-bit offset) or 5 (CDF5).
    pub version: u8,
    /// Number of records (`None` for a streamed file).
    pub numrecs: Option<u64>,
    /// Bytes the data of every variable reaches.
    pub required_len: u64,
    /// Where each variable's data lies.
    pub vars: Vec<VarPlace>,
    /// Bytes between the starts of two records.
    pub recsize: u64,
}

/// Where a netCDF-3 variable's data lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarPlace {
    /// The variable's name.
    pub name: String,
    /// Whether it is along the record dimension.
    pub record: bool,
    /// Offset of its data (of its first record).
    pub begin: u64,
    /// Bytes of its data (of one record), without padding.
    pub size: u64,
}

/// Checks the netCDF-3 file at `path` (see the module docs).
///
/// # Errors
/// A [`HeaderError`].
pub fn check_file(path: &Path) -> Result<HeaderInfo, HeaderError> {
    let file = File::open(path).map_err(|e| HeaderError::Io(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| HeaderError::Io(e.to_string()))?
        .len();
    let mut src = Source {
        file,
        buf: Vec::new(),
        len,
    };
    parse(&mut src)
}

/// Checks a header held in memory (`bytes` is the whole file).
///
/// # Errors
/// A [`HeaderError`].
pub fn check_bytes(bytes: &[u8]) -> Result<HeaderInfo, HeaderError> {
    let mut src = Memory(bytes);
    parse(&mut src)
}

/// Bytes of a header, read on demand.
trait Bytes {
    /// The total file length.
    fn len(&self) -> u64;
    /// The bytes `[at, at + n)`, all of them, or `None` past the end.
    fn get(&mut self, at: u64, n: usize) -> Result<Option<&[u8]>, HeaderError>;
}

struct Memory<'a>(&'a [u8]);

impl Bytes for Memory<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn get(&mut self, at: u64, n: usize) -> Result<Option<&[u8]>, HeaderError> {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        Ok(at.checked_add(n).and_then(|end| self.0.get(at..end)))
    }
}

/// A file read from its start in growing steps, as far as the header goes.
struct Source {
    file: File,
    buf: Vec<u8>,
    len: u64,
}

impl Bytes for Source {
    fn len(&self) -> u64 {
        self.len
    }
    fn get(&mut self, at: u64, n: usize) -> Result<Option<&[u8]>, HeaderError> {
        let Some(end) = at.checked_add(n as u64) else {
            return Ok(None);
        };
        if end > self.len {
            return Ok(None);
        }
        let end = usize::try_from(end).map_err(|_| HeaderError::Io("header too large".into()))?;
        if end > self.buf.len() {
            // Read at least 1 MiB more, never past the end of the file.
            let want = (end.max(self.buf.len() + (1 << 20)) as u64).min(self.len);
            let want = usize::try_from(want).unwrap_or(end);
            let old = self.buf.len();
            self.buf.resize(want, 0);
            self.file
                .read_exact(&mut self.buf[old..])
                .map_err(|e| HeaderError::Io(e.to_string()))?;
        }
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        Ok(self.buf.get(at..end))
    }
}

struct Cursor<'a, B: Bytes> {
    src: &'a mut B,
    pos: u64,
    /// Width of `NON_NEG` counts and dimension ids (4, or 8 in CDF5).
    wide: bool,
}

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;

impl<B: Bytes> Cursor<'_, B> {
    fn corrupt(&self, what: impl Into<String>) -> HeaderError {
        HeaderError::Corrupt {
            offset: self.pos,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], HeaderError> {
        let pos = self.pos;
        match self.src.get(pos, n)? {
            Some(b) => {
                self.pos = pos + n as u64;
                Ok(b)
            }
            None => Err(HeaderError::Corrupt {
                offset: pos,
                what: format!("the header ends early (needs {n} more bytes)"),
            }),
        }
    }

    fn u32(&mut self) -> Result<u32, HeaderError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, HeaderError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `NON_NEG` count: 4 bytes, 8 in CDF5; negative values are corrupt.
    fn count(&mut self) -> Result<u64, HeaderError> {
        if self.wide {
            let x = self.u64()?;
            if x > i64::MAX as u64 {
                return Err(self.corrupt(format!(
                    "negative count {}",
                    i64::from_ne_bytes(x.to_ne_bytes())
                )));
            }
            Ok(x)
        } else {
            let x = self.u32()?;
            if x > i32::MAX as u32 {
                return Err(self.corrupt(format!(
                    "negative count {}",
                    i32::from_ne_bytes(x.to_ne_bytes())
                )));
            }
            Ok(u64::from(x))
        }
    }

    fn remaining(&self) -> u64 {
        self.src.len().saturating_sub(self.pos)
    }

    /// A list count, each item taking at least `min_item` bytes.
    fn list_len(&mut self, min_item: u64, what: &str) -> Result<u64, HeaderError> {
        let n = self.count()?;
        if n.saturating_mul(min_item) > self.remaining() {
            return Err(self.corrupt(format!(
                "{n} {what} cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    fn padded(&mut self, n: u64, what: &str) -> Result<Vec<u8>, HeaderError> {
        let padded = n
            .checked_add(3)
            .map(|x| x & !3)
            .filter(|&x| x <= self.remaining())
            .ok_or_else(|| {
                self.corrupt(format!("{what} of {n} bytes runs past the end of the file"))
            })?;
        let p = usize::try_from(padded).map_err(|_| self.corrupt("size"))?;
        let n = usize::try_from(n).map_err(|_| self.corrupt("size"))?;
        Ok(self.take(p)?[..n].to_vec())
    }

    fn name(&mut self, what: impl Fn() -> String) -> Result<String, HeaderError> {
        let n = self.count()?;
        let bytes = self.padded(n, "a name")?;
        String::from_utf8(bytes).map_err(|_| HeaderError::Name { what: what() })
    }

    /// A list tag and its count: ABSENT gives 0.
    fn tag(&mut self, expected: u32, min_item: u64, what: &str) -> Result<u64, HeaderError> {
        let tag = self.u32()?;
        if tag == 0 {
            let n = self.count()?;
            if n != 0 {
                return Err(self.corrupt(format!("an absent {what} list with {n} items")));
            }
            return Ok(0);
        }
        if tag != expected {
            return Err(self.corrupt(format!("expected the {what} list, found tag {tag:#x}")));
        }
        self.list_len(min_item, what)
    }

    fn attrs(&mut self, version: u8, owner: &str) -> Result<(), HeaderError> {
        let n = self.tag(NC_ATTRIBUTE, 12, "attribute")?;
        for k in 0..n {
            let name = self.name(|| format!("attribute #{k} of {owner}"))?;
            let t = self.u32()?;
            let size = type_size(t, version).ok_or_else(|| {
                self.corrupt(format!("attribute '{name}' of {owner} has type {t}"))
            })?;
            let nelems = self.count()?;
            let bytes = nelems
                .checked_mul(size)
                .ok_or_else(|| self.corrupt(format!("attribute '{name}' is too large")))?;
            self.padded(bytes, &format!("attribute '{name}' of {owner}"))?;
        }
        Ok(())
    }
}

/// Size of a netCDF-3 external type, `None` for a type the version lacks.
fn type_size(t: u32, version: u8) -> Option<u64> {
    Some(match t {
        1 | 2 => 1,
        3 => 2,
        4 | 5 => 4,
        6 => 8,
        7 if version == 5 => 1,
        8 if version == 5 => 2,
        9 if version == 5 => 4,
        10 | 11 if version == 5 => 8,
        _ => return None,
    })
}

struct VarEntry {
    name: String,
    record: bool,
    /// Bytes of one record (record variables) or of the whole variable.
    size: u128,
    begin: u64,
}

#[allow(clippy::too_many_lines)] // the netCDF-3 header grammar, field by field in file order
fn parse<B: Bytes>(src: &mut B) -> Result<HeaderInfo, HeaderError> {
    let file_len = src.len();
    let mut c = Cursor {
        src,
        pos: 0,
        wide: false,
    };
    let magic = c.take(4)?.to_vec();
    if &magic[..3] != b"CDF" || !matches!(magic[3], 1 | 2 | 5) {
        return Err(HeaderError::Corrupt {
            offset: 0,
            what: "no netCDF-3 signature".into(),
        });
    }
    let version = magic[3];
    c.wide = version == 5;
    let numrecs = if c.wide {
        let x = c.u64()?;
        (x != u64::MAX).then_some(x)
    } else {
        let x = c.u32()?;
        (x != u32::MAX).then_some(u64::from(x))
    };
    let width: u64 = if c.wide { 8 } else { 4 };
    // Dimensions: a name (count + at least 0 bytes) and a length.
    let ndims = c.tag(NC_DIMENSION, 2 * width, "dimension")?;
    let mut dims: Vec<u64> = Vec::new();
    let mut record_dim = None;
    for k in 0..ndims {
        let name = c.name(|| format!("dimension #{k}"))?;
        let len = c.count()?;
        if len == 0 {
            if record_dim.is_some() {
                return Err(c.corrupt(format!("a second unlimited dimension '{name}'")));
            }
            record_dim = Some(dims.len());
        }
        dims.push(len);
    }
    c.attrs(version, "the file")?;
    let nvars = c.tag(NC_VARIABLE, 4 * width + 8, "variable")?;
    let mut vars: Vec<VarEntry> = Vec::new();
    for k in 0..nvars {
        let name = c.name(|| format!("variable #{k}"))?;
        let rank = c.list_len(width, "dimension ids")?;
        let mut size: u128 = 1;
        let mut record = false;
        for d in 0..rank {
            let id = c.count()?;
            let idx = usize::try_from(id)
                .ok()
                .filter(|&i| i < dims.len())
                .ok_or_else(|| {
                    c.corrupt(format!(
                        "variable '{name}' uses dimension id {id} of {}",
                        dims.len()
                    ))
                })?;
            if Some(idx) == record_dim {
                if d != 0 {
                    return Err(c.corrupt(format!(
                        "variable '{name}' has the unlimited dimension in position {d}"
                    )));
                }
                record = true;
            } else {
                size = size.saturating_mul(u128::from(dims[idx]));
            }
        }
        c.attrs(version, &format!("variable '{name}'"))?;
        let t = c.u32()?;
        let tsize = type_size(t, version)
            .ok_or_else(|| c.corrupt(format!("variable '{name}' has type {t}")))?;
        let _vsize = c.count()?;
        let begin = if version == 1 {
            u64::from(c.u32()?)
        } else {
            let b = c.u64()?;
            if b > i64::MAX as u64 {
                return Err(c.corrupt(format!("variable '{name}' begins at a negative offset")));
            }
            b
        };
        vars.push(VarEntry {
            name,
            record,
            size: size.saturating_mul(u128::from(tsize)),
            begin,
        });
    }
    let header_end = c.pos;
    let mut need: u128 = header_end.into();
    let mut reach = String::from("the header");
    let records: Vec<&VarEntry> = vars.iter().filter(|v| v.record).collect();
    // One record holds every record variable, each padded to 4 bytes,
    // except that a single record variable is not padded.
    let recsize: u128 = if records.len() == 1 {
        records[0].size
    } else {
        records.iter().map(|v| v.size.saturating_add(3) & !3).sum()
    };
    for v in &vars {
        if v.begin < header_end && (v.size > 0 && (!v.record || numrecs != Some(0))) {
            return Err(HeaderError::Corrupt {
                offset: header_end,
                what: format!(
                    "variable '{}' begins at byte {}, inside the {header_end}-byte header",
                    v.name, v.begin
                ),
            });
        }
        let end = match (v.record, numrecs) {
            (false, _) => u128::from(v.begin).saturating_add(v.size),
            (true, Some(0) | None) => continue,
            (true, Some(n)) => u128::from(v.begin)
                .saturating_add(u128::from(n - 1).saturating_mul(recsize))
                .saturating_add(v.size),
        };
        if v.size > 0 && end > need {
            need = end;
            reach = format!("variable '{}'", v.name);
        }
    }
    if need > u128::from(file_len) {
        return Err(HeaderError::Truncated {
            need,
            have: file_len,
            what: format!("up to the end of {reach}"),
        });
    }
    Ok(HeaderInfo {
        version,
        numrecs,
        required_len: u64::try_from(need).unwrap_or(u64::MAX),
        recsize: u64::try_from(recsize).unwrap_or(u64::MAX),
        vars: vars
            .into_iter()
            .map(|v| VarPlace {
                name: v.name,
                record: v.record,
                begin: v.begin,
                size: u64::try_from(v.size).unwrap_or(u64::MAX),
            })
            .collect(),
    })
}

/// What is wrong with a netCDF-3 header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header itself is cut short or inconsistent.
    #[error("corrupt netCDF-3 header at byte {offset}: {what}")]
    Corrupt {
        /// Byte offset where the problem was found.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A name that is not UTF-8.
    #[error("corrupt netCDF-3 header: the name of {what} is not valid UTF-8")]
    Name {
        /// Which item.
        what: String,
    },
    /// The header describes more data than the file holds.
    #[error("truncated: the header describes {need} bytes of data ({what}) but the file has {have}; netCDF-C would read zeros for the rest")]
    Truncated {
        /// Bytes the header needs.
        need: u128,
        /// Bytes the file has.
        have: u64,
        /// The variable that reaches furthest.
        what: String,
    },
    /// The file could not be read.
    #[error("cannot read the header: {0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic header builder for tests.
    struct H(Vec<u8>);

    impl H {
        fn new(version: u8, numrecs: u32) -> Self {
            let mut v = b"CDF".to_vec();
            v.push(version);
            v.extend(numrecs.to_be_bytes());
            Self(v)
        }
        fn u32(mut self, x: u32) -> Self {
            self.0.extend(x.to_be_bytes());
            self
        }
        fn u64(mut self, x: u64) -> Self {
            self.0.extend(x.to_be_bytes());
            self
        }
        fn name(mut self, s: &[u8]) -> Self {
            self.0.extend((s.len() as u32).to_be_bytes());
            self.0.extend(s);
            while !self.0.len().is_multiple_of(4) {
                self.0.push(0);
            }
            self
        }
    }

    /// dims time(unlimited), x(3); vars: x(x) float, t(time, x) short.
    fn classic(numrecs: u32, begin_x: u32, begin_t: u32) -> Vec<u8> {
        H::new(1, numrecs)
            .u32(NC_DIMENSION)
            .u32(2)
            .name(b"time")
            .u32(0)
            .name(b"x")
            .u32(3)
            .u32(0)
            .u32(0)
            .u32(NC_VARIABLE)
            .u32(2)
            .name(b"x")
            .u32(1)
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(5)
            .u32(12)
            .u32(begin_x)
            .name(b"t")
            .u32(2)
            .u32(0)
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(3)
            .u32(8)
            .u32(begin_t)
            .0
    }

    #[test]
    fn a_complete_file_passes() {
        let mut f = classic(2, 0, 0);
        let hdr = f.len() as u32;
        f = classic(2, hdr, hdr + 12);
        // x: 12 bytes; t: one record variable of 3 shorts = 6 bytes unpadded.
        f.resize(hdr as usize + 12 + 6 + 6, 0);
        let info = check_bytes(&f).unwrap();
        assert_eq!(info.required_len, u64::from(hdr) + 24);
        assert_eq!(info.numrecs, Some(2));
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let hdr = classic(2, 0, 0).len() as u32;
        let mut f = classic(2, hdr, hdr + 12);
        f.resize(hdr as usize + 12 + 6 + 5, 0);
        let e = check_bytes(&f).unwrap_err();
        assert!(matches!(e, HeaderError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("variable 't'"), "{e}");
    }

    #[test]
    fn huge_record_counts_and_sizes_are_refused_without_allocating() {
        let hdr = classic(0, 0, 0).len() as u32;
        let mut f = classic(u32::MAX - 1, hdr, hdr + 12);
        f.resize(hdr as usize + 100, 0);
        assert!(matches!(
            check_bytes(&f),
            Err(HeaderError::Truncated { .. })
        ));
        // CDF5: 2^40 records of a variable along a 2^59-element dimension.
        let name64 = |h: H, s: &[u8]| {
            let mut h = h.u64(s.len() as u64);
            h.0.extend(s);
            while !h.0.len().is_multiple_of(4) {
                h.0.push(0);
            }
            h
        };
        let h = H(b"CDF\x05".to_vec()).u64(1 << 40).u32(NC_DIMENSION).u64(2);
        let h = name64(h, b"t").u64(0);
        let h = name64(h, b"n")
            .u64(1 << 59)
            .u32(0)
            .u64(0)
            .u32(NC_VARIABLE)
            .u64(1);
        let h = name64(h, b"v")
            .u64(2)
            .u64(0)
            .u64(1)
            .u32(0)
            .u64(0)
            .u32(6)
            .u64(8)
            .u64(200);
        let mut f = h.0;
        f.resize(300, 0);
        let e = check_bytes(&f).unwrap_err();
        assert!(matches!(e, HeaderError::Truncated { .. }), "{e}");
    }

    #[test]
    fn counts_beyond_the_file_and_bad_names_are_refused() {
        let f = H::new(1, 0).u32(NC_DIMENSION).u32(0x7fff_ffff).0;
        assert!(matches!(check_bytes(&f), Err(HeaderError::Corrupt { .. })));
        let f = H::new(1, 0)
            .u32(NC_DIMENSION)
            .u32(1)
            .name(b"\xff\xfe")
            .u32(3)
            .u32(0)
            .u32(0)
            .u32(0)
            .u32(0)
            .0;
        assert!(matches!(check_bytes(&f), Err(HeaderError::Name { .. })));
        for cut in 0..classic(0, 0, 0).len() {
            let f = classic(0, 0, 0);
            assert!(check_bytes(&f[..cut]).is_err(), "cut at {cut}");
        }
    }
}
