//! Unit tests of [`super::combine`] on synthetic scans.

use super::*;
use crate::model::schema::DType;
use crate::model::schema::{Attr, Dim};
use crate::pipeline::scan::ScanCoord;

fn text(name: &str, v: &str) -> Attr {
    Attr {
        name: name.into(),
        value: AttrValue::Text(v.into()),
    }
}

fn var(name: &str, dims: &[&str], shape: &[u64], dtype: DType, attrs: Vec<Attr>) -> Var {
    Var {
        name: name.into(),
        path: name.into(),
        dtype,
        dims: dims.iter().map(|s| (*s).to_string()).collect(),
        shape: shape.to_vec(),
        source_chunks: None,
        filters: vec![],
        big_endian: false,
        attrs,
        via_netcdf: false,
    }
}

/// A file with `time` (unlimited) values `t`, a data variable per name in
/// `data`, and a static `orog`.
pub(super) fn file(path: &str, t: &[f64], units: &str, data: &[&str]) -> FileScan {
    let n = t.len() as u64;
    let mut vars = vec![var(
        "time",
        &["time"],
        &[n],
        DType::F64,
        vec![text("units", units), text("calendar", "standard")],
    )];
    for d in data {
        vars.push(var(
            d,
            &["time", "lat"],
            &[n, 3],
            DType::F32,
            vec![text("units", "K")],
        ));
    }
    vars.push(var(
        "orog",
        &["lat"],
        &[3],
        DType::F64,
        vec![text("units", "m")],
    ));
    FileScan {
        path: PathBuf::from(path),
        canonical: PathBuf::from(path),
        size: 0,
        mtime_ns: 0,
        schema: Schema {
            source: PathBuf::from(path),
            format: SourceFormat::Netcdf4,
            root: Group {
                name: String::new(),
                path: String::new(),
                dims: vec![
                    Dim {
                        name: "time".into(),
                        len: n,
                        unlimited: true,
                    },
                    Dim {
                        name: "lat".into(),
                        len: 3,
                        unlimited: false,
                    },
                ],
                attrs: vec![text("title", path)],
                vars,
                groups: vec![],
            },
            skipped: vec![],
            warnings: vec![],
        },
        coords: vec![ScanCoord {
            dim: "time".into(),
            len: n,
            values: Some(t.to_vec()),
            ints: None,
        }],
        digests: vec![],
        layouts: vec![],
    }
}

const H: &str = "hours since 2000-01-01";

fn err(scans: &[FileScan]) -> String {
    match combine(scans, &CombineOptions::default()) {
        Ok(_) => panic!("combined"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn files_are_ordered_by_time_not_name() {
    let scans = vec![
        file("b.nc", &[0.0, 1.0], H, &["t2m"]),
        file("a.nc", &[2.0, 3.0, 4.0], H, &["t2m"]),
    ];
    let ds = combine(&scans, &CombineOptions::default()).unwrap();
    let c = ds.concat.as_ref().unwrap();
    assert_eq!(c.dim, "time");
    assert_eq!(c.len, 5);
    assert_eq!(c.values.as_deref(), Some(&[0.0, 1.0, 2.0, 3.0, 4.0][..]));
    let t2m = ds
        .schema
        .vars()
        .iter()
        .position(|v| v.name == "t2m")
        .unwrap();
    let segs = &ds.sources[t2m].segments;
    assert_eq!((segs[0].file, segs[0].start, segs[0].len), (0, 0, 2));
    assert_eq!((segs[1].file, segs[1].start, segs[1].len), (1, 2, 3));
    assert_eq!(ds.schema.vars()[t2m].shape, vec![5, 3]);
    // Global attributes from the first file in time order.
    assert_eq!(
        ds.schema.root.attrs[0].value,
        AttrValue::Text("b.nc".into())
    );
    // The static variable comes from that file too.
    let orog = ds
        .schema
        .vars()
        .iter()
        .position(|v| v.name == "orog")
        .unwrap();
    assert_eq!(ds.sources[orog].axis, None);
    assert_eq!(ds.sources[orog].segments[0].file, 0);
}

#[test]
fn gaps_overlaps_and_duplicates_name_both_files() {
    let gap = err(&[
        file("a.nc", &[0.0, 1.0], H, &["t2m"]),
        file("b.nc", &[5.0, 6.0], H, &["t2m"]),
    ]);
    assert!(
        gap.contains("gap") && gap.contains("a.nc") && gap.contains("b.nc"),
        "{gap}"
    );
    let overlap = err(&[
        file("a.nc", &[0.0, 2.0], H, &["t2m"]),
        file("b.nc", &[1.0, 3.0], H, &["t2m"]),
    ]);
    assert!(
        overlap.contains("overlap") && overlap.contains("a.nc"),
        "{overlap}"
    );
    let dup = err(&[
        file("a.nc", &[0.0, 1.0], H, &["t2m"]),
        file("b.nc", &[1.0, 2.0], H, &["t2m"]),
    ]);
    assert!(dup.contains("duplicated") && dup.contains("b.nc"), "{dup}");
    let allowed = CombineOptions {
        allow_gaps: true,
        ..CombineOptions::default()
    };
    assert!(combine(
        &[
            file("a.nc", &[0.0, 1.0], H, &["t2m"]),
            file("b.nc", &[5.0, 6.0], H, &["t2m"]),
        ],
        &allowed
    )
    .is_ok());
}

#[test]
fn merge_of_variable_families() {
    let scans = vec![
        file("t2m_1.nc", &[0.0, 1.0], H, &["t2m"]),
        file("t2m_2.nc", &[2.0, 3.0], H, &["t2m"]),
        file("u10_1.nc", &[0.0, 1.0], H, &["u10"]),
        file("u10_2.nc", &[2.0, 3.0], H, &["u10"]),
    ];
    let ds = combine(&scans, &CombineOptions::default()).unwrap();
    let names: Vec<&str> = ds.schema.vars().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["time", "t2m", "orog", "u10"]);
    let u10 = &ds.sources[3];
    assert_eq!(u10.segments[1].file, 3);
    // A family that misses a step.
    let short = err(&[
        file("t2m_1.nc", &[0.0, 1.0], H, &["t2m"]),
        file("t2m_2.nc", &[2.0, 3.0], H, &["t2m"]),
        file("u10_1.nc", &[0.0, 1.0], H, &["u10"]),
    ]);
    assert!(
        short.contains("disagree") && short.contains("u10"),
        "{short}"
    );
}

#[test]
fn a_variable_missing_from_one_file() {
    let e = err(&[
        file("a.nc", &[0.0], H, &["t2m", "u10"]),
        file("b.nc", &[1.0], H, &["t2m"]),
    ]);
    assert!(e.contains("'u10' is missing from b.nc"), "{e}");
}

#[test]
fn differing_packing_type_and_shape_are_errors() {
    let mut b = file("b.nc", &[1.0], H, &["t2m"]);
    b.schema.root.vars[1].attrs.push(Attr {
        name: "scale_factor".into(),
        value: AttrValue::F32(vec![0.01]),
    });
    let e = err(&[file("a.nc", &[0.0], H, &["t2m"]), b]);
    assert!(
        e.contains("scale_factor") && e.contains("a.nc") && e.contains("b.nc"),
        "{e}"
    );

    let mut b = file("b.nc", &[1.0], H, &["t2m"]);
    b.schema.root.vars[1].dtype = DType::F64;
    let e = err(&[file("a.nc", &[0.0], H, &["t2m"]), b]);
    assert!(
        e.contains("type") && e.contains("float") && e.contains("double"),
        "{e}"
    );

    let mut b = file("b.nc", &[1.0], H, &["t2m"]);
    b.schema.root.vars[1].shape = vec![1, 4];
    let e = err(&[file("a.nc", &[0.0], H, &["t2m"]), b]);
    assert!(e.contains("shape off the concatenation dimension"), "{e}");

    let mut b = file("b.nc", &[1.0], H, &["t2m"]);
    b.schema.root.vars[2].attrs = vec![text("units", "km")];
    let e = err(&[file("a.nc", &[0.0], H, &["t2m"]), b]);
    assert!(e.contains("'orog'") && e.contains("units"), "{e}");
}

#[test]
fn time_units_are_reencoded_to_the_first_files() {
    let scans = vec![
        file("a.nc", &[0.0, 1.0], H, &["t2m"]),
        // 2000-01-01T02 and 03 as hours since 2000-01-01T02.
        file(
            "b.nc",
            &[0.0, 1.0],
            "hours since 2000-01-01 02:00",
            &["t2m"],
        ),
    ];
    let ds = combine(&scans, &CombineOptions::default()).unwrap();
    let c = ds.concat.as_ref().unwrap();
    assert_eq!(c.values.as_deref(), Some(&[0.0, 1.0, 2.0, 3.0][..]));
    assert_eq!(c.time_units.as_deref(), Some(H));
    let time = &ds.sources[0];
    assert!(time.segments[0].recode.is_none());
    let r = time.segments[1].recode.unwrap();
    assert_eq!(r.apply_f64(1.0), 3.0);
    // The time-first file decides, whatever the name order.
    let scans = vec![
        file("a.nc", &[0.0], "hours since 2000-01-01 02:00", &["t2m"]),
        file("b.nc", &[0.0, 1.0], H, &["t2m"]),
    ];
    let ds = combine(&scans, &CombineOptions::default()).unwrap();
    assert_eq!(ds.concat.unwrap().time_units.as_deref(), Some(H));
    // A calendar mismatch is an error.
    let mut b = file("b.nc", &[2.0], H, &["t2m"]);
    b.schema.root.vars[0].attrs[1] = text("calendar", "noleap");
    let e = err(&[file("a.nc", &[0.0, 1.0], H, &["t2m"]), b]);
    assert!(e.contains("calendar"), "{e}");
}

#[test]
fn files_without_a_common_axis_must_not_share_variables() {
    let mut a = file("a.nc", &[0.0], H, &["t2m"]);
    let mut b = file("b.nc", &[0.0], H, &["u10"]);
    for s in [&mut a, &mut b] {
        s.schema.root.dims[0].unlimited = false;
        s.coords.clear();
    }
    let e = err(&[a, b]);
    assert!(e.contains("--concat-dim"), "{e}");
}

#[test]
fn calendars_unknown_to_zarrforge_pass_when_nothing_is_reencoded() {
    let mut a = file("a.nc", &[0.0, 1.0], H, &["t2m"]);
    let mut b = file("b.nc", &[2.0], H, &["t2m"]);
    a.schema.root.vars[0].attrs[1] = text("calendar", "gregorian_tp");
    b.schema.root.vars[0].attrs[1] = text("calendar", "gregorian_tp");
    let ds = combine(&[a.clone(), b.clone()], &CombineOptions::default()).unwrap();
    assert_eq!(ds.concat.unwrap().calendar.as_deref(), Some("gregorian_tp"));
    // Equivalent names are the same calendar.
    let mut c = file("c.nc", &[2.0], H, &["t2m"]);
    c.schema.root.vars[0].attrs[1] = text("calendar", "gregorian");
    let d = file("d.nc", &[0.0, 1.0], H, &["t2m"]);
    assert!(combine(&[d, c], &CombineOptions::default()).is_ok());
    // Re-encoding needs a calendar zarrforge knows.
    b.schema.root.vars[0].attrs[0] = text("units", "hours since 2000-01-01 02:00");
    b.coords[0].values = Some(vec![0.0]);
    let e = err(&[a, b]);
    assert!(e.contains("calendar"), "{e}");
}
