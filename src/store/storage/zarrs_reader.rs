//! A [`Storage`] read by zarrs (verify opens arrays through it). One byte
//! range is one ranged GET; several are cut from one whole GET.

use std::sync::Arc;

use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{
    Bytes, MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
};

use super::Storage;

/// zarrs' read-only view of a store.
#[derive(Debug, Clone)]
pub struct ZarrsReader(pub Arc<dyn Storage>);

fn other(e: &dyn std::fmt::Display) -> StorageError {
    StorageError::Other(e.to_string())
}

impl ReadableStorageTraits for ZarrsReader {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        Ok(self
            .0
            .get(key.as_str())
            .map_err(|e| other(&e))?
            .map(Bytes::from))
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        if let [ByteRange::FromStart(offset, len)] = ranges[..] {
            let got = self
                .0
                .get_range(key.as_str(), offset, len)
                .map_err(|e| other(&e))?;
            return Ok(got.map(|b| {
                Box::new(std::iter::once(Ok(Bytes::from(b)))) as Box<dyn Iterator<Item = _>>
            }));
        }
        let Some(whole) = self.0.get(key.as_str()).map_err(|e| other(&e))? else {
            return Ok(None);
        };
        let whole = Bytes::from(whole);
        let size = whole.len() as u64;
        let out: Vec<Result<Bytes, StorageError>> = ranges
            .iter()
            .map(|r| {
                let (s, e) = (r.start(size), r.end(size));
                if s > e || e > size {
                    Err(StorageError::Other(format!(
                        "byte range {s}..{e} beyond the {size} bytes of {}",
                        key.as_str()
                    )))
                } else {
                    Ok(whole.slice(s as usize..e as usize))
                }
            })
            .collect();
        Ok(Some(Box::new(out.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.0.size(key.as_str()).map_err(|e| other(&e))
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}
