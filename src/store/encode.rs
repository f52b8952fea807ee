//! Encoding and storing whole work units (chunks or shards).
//!
//! zarrs builds the codec chain from the same metadata that the commit
//! writes, so a unit is encoded exactly as the metadata describes; the bytes
//! are then written through the store's [`Storage`]. Edge units are padded
//! to the full unit shape with the fill value, as Zarr requires. The values
//! of an array with `keepbits` are rounded first (`BitRound`).

use std::path::Path;
use std::sync::Arc;

use zarrs::array::{
    Array, ArrayBytes, ArrayBytesOffsets, ArrayMetadata, ArrayToBytesCodecTraits, CodecOptions,
};
use zarrs::storage::store::MemoryStore;

use super::metadata;
use crate::cli::config::ZarrFormat;
use crate::model::bitround::Rounder;
use crate::model::block::{pad_region, pad_region_items};
use crate::model::schema::{DType, Var};
use crate::pipeline::plan::ArrayPlan;
use crate::pipeline::read::Values;
use crate::store::error::WriteError;
use crate::store::storage::{self, Storage};

/// Encodes and stores the units of one output array.
pub struct ArrayEncoder {
    array: Array<MemoryStore>,
    storage: Arc<dyn Storage>,
    path: String,
    format: ZarrFormat,
    dtype: DType,
    unit_shape: Vec<u64>,
    pad: Vec<u8>,
    options: CodecOptions,
    /// The rounding of the values (`--keepbits`).
    round: Option<Rounder>,
}

impl ArrayEncoder {
    /// Prepares the encoder of `a` (variable `var`) in the store at `store`.
    ///
    /// # Errors
    /// [`WriteError::Array`] when zarrs refuses the metadata;
    /// [`WriteError::Remote`] when the store's storage cannot be opened.
    pub fn new(
        store: &Path,
        var: &Var,
        a: &ArrayPlan,
        format: ZarrFormat,
    ) -> Result<Self, WriteError> {
        let codec = &a.codec;
        let err = |source: crate::store::error::BoxError| WriteError::Array {
            var: var.path.clone(),
            source,
        };
        let meta = metadata::array_v3(var, a, codec, true);
        let meta: zarrs::array::ArrayMetadataV3 =
            serde_json::from_value(meta).map_err(|e| err(e.into()))?;
        let array =
            Array::new_with_metadata(Arc::new(MemoryStore::new()), "/", ArrayMetadata::V3(meta))
                .map_err(|e| err(e.into()))?;
        Ok(Self {
            array,
            storage: storage::open(store)?,
            path: a.path.clone(),
            format,
            dtype: var.dtype,
            unit_shape: a.unit_shape().to_vec(),
            pad: crate::model::schema::pad_bytes(var),
            options: CodecOptions::default().with_concurrent_target(1),
            round: a
                .keepbits
                .and_then(|k| Rounder::new(var.dtype, k, &crate::model::bitround::masks(var))),
        })
    }

    /// Encodes the unit at `indices` from the values of its region (`count`
    /// elements per dimension from the unit's origin).
    ///
    /// # Errors
    /// [`WriteError::Encode`].
    pub fn encode(
        &self,
        indices: &[u64],
        count: &[u64],
        values: Values,
    ) -> Result<Vec<u8>, WriteError> {
        let err = |source: crate::store::error::BoxError| WriteError::Encode {
            var: self.path.clone(),
            chunk: indices.to_vec(),
            what: "encode",
            source,
        };
        let bytes = match values {
            Values::Fixed(mut b) => {
                if let Some(r) = &self.round {
                    r.round(&mut b);
                }
                let full = pad_region(b, count, &self.unit_shape, &self.pad, self.dtype.size());
                ArrayBytes::new_flen(full)
            }
            Values::Strings(s) => {
                let s = pad_region_items(s, count, &self.unit_shape);
                let mut data = Vec::new();
                let mut offsets = Vec::with_capacity(s.len() + 1);
                offsets.push(0usize);
                for x in &s {
                    data.extend_from_slice(x.as_bytes());
                    offsets.push(data.len());
                }
                let offsets = ArrayBytesOffsets::new(offsets).map_err(|e| err(e.into()))?;
                ArrayBytes::new_vlen(data, offsets).map_err(|e| err(e.into()))?
            }
        };
        let shape = self.array.chunk_shape(indices).map_err(|e| err(e.into()))?;
        let encoded = self
            .array
            .codecs()
            .encode(
                bytes,
                &shape,
                self.array.data_type(),
                self.array.fill_value(),
                &self.options,
            )
            .map_err(|e| err(e.into()))?;
        Ok(encoded.into_owned())
    }

    /// Reads back and decodes the stored unit at `indices` (whole unit
    /// shape, C order); `None` when the unit was never written.
    ///
    /// # Errors
    /// [`WriteError::Io`] when the file cannot be read,
    /// [`WriteError::Encode`] when it cannot be decoded.
    pub fn load(&self, indices: &[u64]) -> Result<Option<Values>, WriteError> {
        let Some(bytes) = self.storage.get(&self.unit_key(indices))? else {
            return Ok(None);
        };
        let err = |source: crate::store::error::BoxError| WriteError::Encode {
            var: self.path.clone(),
            chunk: indices.to_vec(),
            what: "decode the stored unit",
            source,
        };
        let shape = self.array.chunk_shape(indices).map_err(|e| err(e.into()))?;
        let decoded = self
            .array
            .codecs()
            .decode(
                bytes.into(),
                &shape,
                self.array.data_type(),
                self.array.fill_value(),
                &self.options,
            )
            .map_err(|e| err(e.into()))?;
        Ok(Some(match decoded {
            ArrayBytes::Variable(v) => {
                let (data, offsets) = v.into_parts();
                let mut out = Vec::with_capacity(offsets.len().saturating_sub(1));
                for w in offsets.windows(2) {
                    out.push(String::from_utf8_lossy(&data[w[0]..w[1]]).into_owned());
                }
                Values::Strings(out)
            }
            other => Values::Fixed(other.into_fixed().map_err(|e| err(e.into()))?.into_owned()),
        }))
    }

    /// The unit shape.
    pub fn unit_shape(&self) -> &[u64] {
        &self.unit_shape
    }

    /// The element used for padding, as bytes.
    pub fn pad(&self) -> &[u8] {
        &self.pad
    }

    /// Key of the unit in the store.
    pub fn unit_key(&self, indices: &[u64]) -> String {
        storage::join(&self.path, &metadata::chunk_key(self.format, indices))
    }

    /// Stores encoded bytes of the unit at `indices`. On object storage the
    /// upload may still be in flight when this returns: the journal waits
    /// for it ([`Storage::sync`]) before it records the unit.
    ///
    /// # Errors
    /// [`WriteError::Io`] with the path; [`WriteError::Remote`] of this
    /// upload or an earlier one.
    pub fn store(&self, indices: &[u64], bytes: Vec<u8>) -> Result<(), WriteError> {
        self.storage.put_later(&self.unit_key(indices), bytes)
    }

    /// Makes the unit at `indices` a reference to another file's bytes
    /// (`convert --virtual`); durable at the next [`Storage::sync`].
    ///
    /// # Errors
    /// [`WriteError`] of the storage (one without references refuses).
    pub fn store_virtual(
        &self,
        indices: &[u64],
        reference: storage::VirtualRef,
    ) -> Result<(), WriteError> {
        self.storage.put_virtual(&self.unit_key(indices), reference)
    }
}
