//! A source file's storage pipeline as Zarr codecs: the byte order of the
//! stored elements and the HDF5 filters that Zarr readers can undo, in the
//! order they were applied when writing. Virtual references
//! (`convert --virtual`) point at stored chunks, so the output array must
//! describe exactly this pipeline.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Byte order of the stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first (netCDF-3, big-endian HDF5 types).
    Big,
}

/// One filter of the pipeline, as a Zarr (numcodecs) codec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Filter {
    /// Byte shuffle of `elem`-byte elements (HDF5 filter 2).
    Shuffle {
        /// Element size in bytes.
        elem: u32,
    },
    /// A zlib stream (HDF5 "deflate", filter 1).
    Zlib {
        /// Compression level.
        level: u32,
    },
    /// Zstandard frames (HDF5 filter 32015).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// A Blosc frame (HDF5 filter 32001).
    Blosc {
        /// Compressor name.
        cname: String,
        /// Level 0..=9.
        clevel: u32,
        /// 0 none, 1 byte shuffle, 2 bit shuffle.
        shuffle: u32,
        /// Element size in bytes.
        typesize: u32,
    },
    /// A 4-byte Fletcher-32 checksum after the data (HDF5 filter 3).
    Fletcher32,
}

impl Filter {
    /// The Zarr v3 codec.
    pub fn v3(&self) -> Value {
        match self {
            Self::Shuffle { elem } => {
                json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": elem}})
            }
            Self::Zlib { level } => {
                json!({"name": "numcodecs.zlib", "configuration": {"level": level}})
            }
            // HDF5's zstd and Blosc filters store plain frames: Zarr's own
            // codecs read them.
            Self::Zstd { level } => {
                json!({"name": "zstd", "configuration": {"level": level, "checksum": false}})
            }
            Self::Blosc {
                cname,
                clevel,
                shuffle,
                typesize,
            } => {
                let shuffle = match shuffle {
                    0 => "noshuffle",
                    2 => "bitshuffle",
                    _ => "shuffle",
                };
                json!({"name": "blosc", "configuration": {
                    "cname": cname, "clevel": clevel, "shuffle": shuffle,
                    "typesize": typesize, "blocksize": 0}})
            }
            Self::Fletcher32 => json!({"name": "numcodecs.fletcher32", "configuration": {}}),
        }
    }

    /// The Zarr v2 (numcodecs) filter.
    pub fn v2(&self) -> Value {
        match self {
            Self::Shuffle { elem } => json!({"id": "shuffle", "elementsize": elem}),
            Self::Zlib { level } => json!({"id": "zlib", "level": level}),
            Self::Zstd { level } => json!({"id": "zstd", "level": level}),
            Self::Blosc {
                cname,
                clevel,
                shuffle,
                typesize,
            } => json!({"id": "blosc", "cname": cname, "clevel": clevel,
                "shuffle": shuffle, "typesize": typesize, "blocksize": 0}),
            Self::Fletcher32 => json!({"id": "fletcher32"}),
        }
    }
}

/// A stored pipeline: byte order, then the filters in writing order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceCodecs {
    /// Byte order of the elements.
    pub endian: Endian,
    /// The filters, in the order they were applied when writing.
    pub filters: Vec<Filter>,
}

impl SourceCodecs {
    /// A short description for messages (`"big-endian, shuffle(4), zlib(4)"`).
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.endian {
            Endian::Little => "little-endian".to_string(),
            Endian::Big => "big-endian".to_string(),
        }];
        parts.extend(self.filters.iter().map(|f| match f {
            Filter::Shuffle { elem } => format!("shuffle({elem})"),
            Filter::Zlib { level } => format!("zlib({level})"),
            Filter::Zstd { level } => format!("zstd({level})"),
            Filter::Blosc { cname, clevel, .. } => format!("blosc({cname},{clevel})"),
            Filter::Fletcher32 => "fletcher32".into(),
        }));
        parts.join(", ")
    }

    /// The v3 serializer (`bytes` with the byte order).
    pub fn serializer_v3(&self, elem_size: usize) -> Value {
        if elem_size <= 1 {
            return json!({"name": "bytes"});
        }
        let endian = match self.endian {
            Endian::Little => "little",
            Endian::Big => "big",
        };
        json!({"name": "bytes", "configuration": {"endian": endian}})
    }
}

/// How one file stores one variable, as far as references to its bytes
/// need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredLayout {
    /// HDF5 chunks of `chunk` elements through `codecs` (`Err`: the filter
    /// that no Zarr reader undoes).
    Chunked {
        /// Chunk shape.
        chunk: Vec<u64>,
        /// The pipeline, or why it cannot be expressed.
        codecs: Result<SourceCodecs, String>,
    },
    /// One unfiltered HDF5 block holding the whole variable.
    Contiguous {
        /// Byte order.
        endian: Endian,
    },
    /// netCDF-3: one block per record (`record`) or one for the variable;
    /// big-endian, unfiltered.
    Netcdf3 {
        /// Whether the variable is along the record dimension.
        record: bool,
    },
    /// The bytes cannot be referenced (why: compact storage, an external
    /// file, a type that is not stored as plain numbers).
    Unreferencable(String),
}

impl StoredLayout {
    /// The chunk shape the references have for a variable of `shape`.
    pub fn chunk(&self, shape: &[u64]) -> Option<Vec<u64>> {
        match self {
            Self::Chunked { chunk, .. } => Some(chunk.clone()),
            Self::Contiguous { .. } | Self::Netcdf3 { record: false } => Some(shape.to_vec()),
            Self::Netcdf3 { record: true } => {
                let mut c = shape.to_vec();
                if let Some(first) = c.first_mut() {
                    *first = 1;
                }
                Some(c)
            }
            Self::Unreferencable(_) => None,
        }
    }

    /// The pipeline as Zarr codecs, or why there is none.
    ///
    /// # Errors
    /// Why the bytes cannot be decoded by a Zarr reader.
    pub fn codecs(&self) -> Result<SourceCodecs, String> {
        match self {
            Self::Chunked { codecs, .. } => codecs.clone(),
            Self::Contiguous { endian } => Ok(SourceCodecs {
                endian: *endian,
                filters: Vec::new(),
            }),
            Self::Netcdf3 { .. } => Ok(SourceCodecs {
                endian: Endian::Big,
                filters: Vec::new(),
            }),
            Self::Unreferencable(why) => Err(why.clone()),
        }
    }

    /// The kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Chunked { .. } => "chunked",
            Self::Contiguous { .. } => "contiguous",
            Self::Netcdf3 { .. } => "netCDF-3",
            Self::Unreferencable(_) => "not referencable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_named_as_numcodecs_names_them() {
        assert_eq!(Filter::Zlib { level: 4 }.v3()["name"], "numcodecs.zlib");
        assert_eq!(Filter::Shuffle { elem: 4 }.v2()["elementsize"], 4);
        assert_eq!(Filter::Fletcher32.v2()["id"], "fletcher32");
        let c = SourceCodecs {
            endian: Endian::Big,
            filters: vec![Filter::Shuffle { elem: 2 }, Filter::Zlib { level: 1 }],
        };
        assert_eq!(c.serializer_v3(2)["configuration"]["endian"], "big");
        assert_eq!(c.serializer_v3(1), json!({"name": "bytes"}));
        assert_eq!(c.describe(), "big-endian, shuffle(2), zlib(1)");
    }
}
