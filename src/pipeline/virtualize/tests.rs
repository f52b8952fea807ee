//! The decisions on small hand-made datasets: what is referenced, what is
//! copied and why, and what is refused.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::model::schema::{DType, Group, Schema, SourceFormat, Var};
use crate::model::source_codecs::{Endian, Filter};
use crate::pipeline::combine::{Concat, Segment, SourceFile};

fn var(name: &str, dims: &[&str], shape: &[u64], dtype: DType) -> Var {
    Var {
        name: name.into(),
        path: name.into(),
        dtype,
        dims: dims.iter().map(|d| (*d).to_string()).collect(),
        shape: shape.to_vec(),
        source_chunks: None,
        filters: Vec::new(),
        big_endian: false,
        attrs: Vec::new(),
        via_netcdf: false,
    }
}

fn zlib(level: u32) -> SourceCodecs {
    SourceCodecs {
        endian: Endian::Little,
        filters: vec![Filter::Shuffle { elem: 4 }, Filter::Zlib { level }],
    }
}

fn chunked(chunk: &[u64], level: u32) -> StoredLayout {
    StoredLayout::Chunked {
        chunk: chunk.to_vec(),
        codecs: Ok(zlib(level)),
    }
}

/// `lens[k]` steps in file k of `tas(time, y)` (y = 100) and its `time`
/// coordinate; file k stores `tas` as `layouts[k]`.
fn series(lens: &[u64], layouts: &[StoredLayout]) -> (Dataset, FileLayouts) {
    let total: u64 = lens.iter().sum();
    let tas = var("tas", &["time", "y"], &[total, 100], DType::F32);
    let time = var("time", &["time"], &[total], DType::F64);
    let mut files = Vec::new();
    let mut segments = Vec::new();
    let mut map: FileLayouts = HashMap::new();
    let mut start = 0;
    for (k, (&len, layout)) in lens.iter().zip(layouts).enumerate() {
        let path = PathBuf::from(format!("/data/f{k}.nc"));
        files.push(SourceFile {
            path: path.clone(),
            canonical: path.clone(),
            format: SourceFormat::Netcdf4,
            size: 1,
            mtime_ns: 0,
        });
        segments.push(Segment {
            file: u32::try_from(k).unwrap_or(0),
            start,
            len,
            recode: None,
        });
        start += len;
        map.insert(
            path,
            HashMap::from([
                ("tas".to_string(), layout.clone()),
                ("time".to_string(), chunked(&[len], 4)),
            ]),
        );
    }
    let source = |v: &Var| VarSource {
        var: v.clone(),
        axis: Some(0),
        segments: segments.clone(),
        stored: None,
        stack: None,
        inline: None,
    };
    let ds = Dataset {
        files,
        sources: vec![source(&tas), source(&time)],
        schema: Schema {
            source: PathBuf::from("/data/f0.nc"),
            format: SourceFormat::Netcdf4,
            root: Group {
                name: String::new(),
                path: String::new(),
                dims: Vec::new(),
                attrs: Vec::new(),
                vars: vec![tas, time],
                groups: Vec::new(),
            },
            skipped: Vec::new(),
            warnings: Vec::new(),
        },
        concat: Some(Concat {
            dim: "time".into(),
            len: total,
            values: None,
            time_units: None,
            calendar: None,
        }),
        grid: None,
    };
    (ds, map)
}

fn opts(fallback: Fallback, copy_below: u64) -> VirtualOutput {
    VirtualOutput {
        fallback,
        copy_below,
        ..VirtualOutput::default()
    }
}

#[test]
fn identical_files_are_referenced_and_the_coordinate_is_copied() {
    let l = chunked(&[2, 50], 4);
    let (ds, layouts) = series(&[4, 4, 3], &[l.clone(), l.clone(), l.clone()]);
    let d = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect("referenced");
    assert_eq!(
        d[0],
        Decision::Reference {
            chunks: vec![2, 50],
            codecs: zlib(4),
            layout: l,
        }
    );
    assert_eq!(d[1], Decision::Copy, "a coordinate is always copied");
}

#[test]
fn a_differing_codec_is_refused_or_copied_naming_the_file() {
    let (ds, layouts) = series(&[4, 4], &[chunked(&[2, 50], 4), chunked(&[2, 50], 9)]);
    let e = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("'tas'") && text.contains("/data/f1.nc"),
        "{text}"
    );
    assert!(
        text.contains("zlib(9)") && text.contains("zlib(4)"),
        "{text}"
    );
    let d = decide(&ds, &layouts, &opts(Fallback::Copy, 0)).expect("copied");
    assert!(matches!(&d[0], Decision::Fallback { why } if why.contains("/data/f1.nc")));
}

#[test]
fn chunks_that_do_not_tile_the_series_are_not_referenced() {
    let l = chunked(&[2, 50], 4);
    // The middle file holds 3 steps: the third file would start mid-chunk.
    let (ds, layouts) = series(&[4, 3, 4], &[l.clone(), l.clone(), l.clone()]);
    let e = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect_err("refused");
    assert!(e.to_string().contains("/data/f1.nc holds 3 steps"), "{e}");
    // Only the last file may end mid-chunk.
    let (ds, layouts) = series(&[4, 4, 3], &[l.clone(), l.clone(), l]);
    assert!(decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).is_ok());
}

#[test]
fn a_differing_chunk_shape_or_layout_kind_is_named() {
    let (ds, layouts) = series(&[4, 4], &[chunked(&[2, 50], 4), chunked(&[4, 50], 4)]);
    let e = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect_err("refused");
    assert!(e.to_string().contains("chunk shape [4, 50]"), "{e}");
    let contiguous = StoredLayout::Contiguous {
        endian: Endian::Little,
    };
    let (ds, layouts) = series(&[4, 4], &[chunked(&[4, 50], 4), contiguous]);
    let e = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect_err("refused");
    assert!(e.to_string().contains("contiguous"), "{e}");
}

#[test]
fn an_undecodable_filter_is_copied_but_refused_for_kerchunk() {
    let szip = StoredLayout::Chunked {
        chunk: vec![2, 50],
        codecs: Err("HDF5 filter 4 (szip), which Zarr readers do not decode".into()),
    };
    let (ds, layouts) = series(&[4], &[szip]);
    let d = decide(&ds, &layouts, &opts(Fallback::Copy, 0)).expect("copied");
    assert!(matches!(&d[0], Decision::Fallback { why } if why.contains("szip")));
    let mut kerchunk = opts(Fallback::Copy, 0);
    kerchunk.kerchunk = Some(PathBuf::from("/out/refs.json"));
    let e = decide(&ds, &layouts, &kerchunk).expect_err("no copies in kerchunk");
    assert!(matches!(e, VirtualError::NotInKerchunk { .. }), "{e}");
}

#[test]
fn small_variables_and_re_encoded_values_are_copied_without_a_warning() {
    let l = chunked(&[2, 50], 4);
    let (ds, layouts) = series(&[4, 4], &[l.clone(), l.clone()]);
    // 8 steps x 100 floats = 3200 bytes.
    let d = decide(&ds, &layouts, &opts(Fallback::Refuse, 3201)).expect("copied");
    assert_eq!(d[0], Decision::Copy);
    let d = decide(&ds, &layouts, &opts(Fallback::Refuse, 3200)).expect("referenced");
    assert!(matches!(d[0], Decision::Reference { .. }));
    let (mut ds, layouts) = series(&[4, 4], &[l.clone(), l]);
    ds.sources[0].segments[1].recode = Some(crate::model::cftime::Recode::default());
    let d = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect("copied");
    assert_eq!(d[0], Decision::Copy);
}

#[test]
fn netcdf3_records_are_one_chunk_per_record() {
    let nc3 = StoredLayout::Netcdf3 { record: true };
    let (ds, layouts) = series(&[3, 5], &[nc3.clone(), nc3]);
    let d = decide(&ds, &layouts, &opts(Fallback::Refuse, 0)).expect("referenced");
    match &d[0] {
        Decision::Reference { chunks, codecs, .. } => {
            assert_eq!(chunks, &vec![1, 100]);
            assert_eq!(codecs.endian, Endian::Big);
            assert!(codecs.filters.is_empty());
        }
        other => panic!("not referenced: {other:?}"),
    }
}

#[test]
fn apply_sets_the_chunks_and_warns_for_fallbacks() {
    let (mut ds, layouts) = series(&[4, 4], &[chunked(&[2, 50], 4), chunked(&[2, 50], 9)]);
    let d = decide(&ds, &layouts, &opts(Fallback::Copy, 0)).expect("copied");
    let warnings = apply(&mut ds, &d);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("variable 'tas' is copied"),
        "{warnings:?}"
    );
    assert!(ds.sources[0].stored.is_none());
    let l = chunked(&[2, 50], 4);
    let (mut ds, layouts) = series(&[4, 4], &[l.clone(), l]);
    let d = decide(&ds, &layouts, &opts(Fallback::Copy, 0)).expect("referenced");
    assert!(apply(&mut ds, &d).is_empty());
    let st = ds.sources[0].stored.as_ref().expect("stored chunks");
    assert_eq!(st.chunks, vec![2, 50]);
    assert_eq!(st.codec, Codec::Virtual(zlib(4)));
}
