//! `--codec source`: a variable whose source chunks can be copied as they
//! are stored (deflate, optionally after shuffle, in exactly the native
//! type) is written with those chunks and that codec. This module finds
//! the stored layout; [`super::Reader::stored_chunk`] hands a unit that is
//! exactly one stored chunk to the writer; the plan and the metadata only
//! see the resulting [`Codec::Stored`].

use super::error::ReadError;
use super::raw::RawFilter;
use super::FileReader;
use crate::cli::config::Codec;
use crate::pipeline::combine::{Dataset, StoredChunks};

/// Gives every variable whose codec (`codec_of` its path) is
/// [`Codec::Source`] the stored layout of its first file, when its chunks
/// can be copied as they are.
///
/// # Errors
/// [`ReadError`] when a first file cannot be opened or its layout read.
pub fn resolve(ds: &mut Dataset, codec_of: impl Fn(&str) -> Codec) -> Result<(), ReadError> {
    for src in &mut ds.sources {
        if codec_of(&src.var.path) != Codec::Source {
            continue;
        }
        let Some(file) = src
            .segments
            .first()
            .and_then(|s| ds.files.get(s.file as usize))
        else {
            continue;
        };
        let mut reader = FileReader::new(&file.path, file.format);
        let layout = match reader.hdf5()? {
            Some(h) => h.raw_layout(&src.var)?,
            None => None,
        };
        let Some(l) = layout else { continue };
        let shuffle = match l.filters.as_slice() {
            [] | [RawFilter::Deflate] => None,
            [RawFilter::Shuffle] | [RawFilter::Shuffle, RawFilter::Deflate] => {
                u8::try_from(l.elem).ok()
            }
            _ => continue,
        };
        src.stored = Some(StoredChunks {
            chunks: l.chunk.clone(),
            codec: Codec::Stored {
                shuffle,
                level: l.level,
            },
            layout: None,
        });
    }
    Ok(())
}
