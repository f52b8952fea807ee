//! `verify` checks a store the way a reader sees it, independently of the
//! converter: clean conversions verify identical (Zarr v2 and v3, one and
//! two ranks, several files with other time units, merged variable
//! families), and faults planted by hand in a store's metadata or chunks
//! are reported, naming the array and the fault.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::assert_verify_reports as assert_reports;
use crate::common::*;
use crate::multifile::series;

/// Chars and strings, packing with a fill and a missing value (and real
/// zeros), a float fill with a filled element and a NaN, an int64 fill, a
/// scalar, a nested group, typed global attributes.
const CDL: &str = r#"netcdf faults {
dimensions:
  time = UNLIMITED ; lat = 5 ; lon = 4 ; nc = 3 ;
variables:
  double time(time) ; time:units = "days since 2000-01-01" ; time:calendar = "noleap" ;
  float temp(time, lat, lon) ; temp:_FillValue = 1e20f ; temp:units = "K" ; temp:valid_max = 400.f ;
  short packed(time, lat, lon) ; packed:_FillValue = -32767s ; packed:scale_factor = 0.01f ;
    packed:add_offset = 273.15f ; packed:missing_value = -32767s ;
  char name(lat, nc) ;
  string label(lat) ;
  int64 big(lon) ; big:_FillValue = -9000000000LL ;
  int scalar ; scalar:grid_mapping_name = "latitude_longitude" ;
  :title = "faults" ; :levels = 1, 2, 3 ; :version = 1.5f ; :history = "made by ncgen" ;
data:
  time = 0, 0.25, 0.5 ;
  temp = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    1e20, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, NaN ;
  packed = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    -32767, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ;
  name = "abc", "de", "f", "", "ghi" ;
  label = "one", "", "three", "four", "five" ;
  big = 1, -9000000000, 3, 4 ;
  scalar = 7 ;
group: sub {
  dimensions: p = 7 ;
  variables: double inner(p) ; inner:note = "x" ;
  :purpose = "nested" ;
  data: inner = 1, 2, 3, 4, 5, 6, 7 ;
  }
}
"#;

/// What other writers leave: an enum variable with an enum-typed fill, a
/// string and a char fill, a NUL inside a text attribute, non-finite float
/// attributes.
const AWKWARD_CDL: &str = r#"netcdf awkward {
types:
  ubyte enum cloud_t {clear = 0, cloudy = 1, missing = 255} ;
dimensions:
  x = 4 ; c = 3 ;
variables:
  cloud_t cloud(x) ; cloud:_FillValue = missing ;
  string station(x) ; station:_FillValue = "NA" ;
  char label(x, c) ; label:_FillValue = "z" ;
  int w(x) ; w:_FillValue = -999 ; w:valid_max = Infinity ;
  :note = "before\000after" ;
  :nan_attr = NaNf ;
  :inf_attrs = Infinity, -Infinity, 1. ;
data:
  cloud = clear, cloudy, missing, cloudy ;
  station = "alpha", "NA", _, "delta" ;
  label = "abc", "", "z", "de" ;
  w = 1, -999, 3, 4 ;
}
"#;

fn cdl_fixture(dir: &Path) -> PathBuf {
    ncgen(dir, "faults", CDL)
}

fn ncgen(dir: &Path, name: &str, text: &str) -> PathBuf {
    let cdl = dir.join(format!("{name}.cdl"));
    let nc = dir.join(format!("{name}.nc"));
    std::fs::write(&cdl, text).unwrap();
    let st = std::process::Command::new("ncgen")
        .args(["-4", "-o", s(&nc), s(&cdl)])
        .status()
        .expect("ncgen (netcdf-bin) is needed by this test");
    assert!(st.success());
    nc
}

/// Converts `src` into `out` (Zarr `format`; chunks of 2 steps and 2
/// latitudes unless `extra` has `--chunks`).
fn convert(src: &[&Path], out: &Path, format: &str, extra: &[&str]) {
    let mut args = vec!["convert", "--quiet", "--zarr-format", format, "-o", s(out)];
    if !extra.contains(&"--chunks") {
        args.extend(["--chunks", "time=2,lat=2"]);
    }
    args.extend_from_slice(extra);
    args.extend(src.iter().map(|p| s(p)));
    let r = zarrforge(Some(2), &args, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
}

fn verify(ranks: Option<usize>, src: &[&Path], store: &Path) -> Run {
    let mut args = vec!["verify"];
    args.extend(src.iter().map(|p| s(p)));
    args.push(s(store));
    zarrforge(ranks, &args, MINUTE)
}

fn assert_identical(r: &Run) {
    assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
}

/// A copy of `store` (fresh for each planted fault).
fn copy(store: &Path, to: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(to);
    for (rel, bytes) in snapshot(store) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    to.to_path_buf()
}

/// Edits a JSON document of a store by hand.
fn edit(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v = json(path);
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn clean_conversions_verify_identical() {
    let dir = tmp();
    let rich = dir.path().join("rich.nc");
    rich_fixture(&rich);
    let faults = cdl_fixture(dir.path());
    let awkward = ncgen(dir.path(), "awkward", AWKWARD_CDL);
    for fmt in ["3", "2"] {
        for src in [&rich, &faults, &awkward] {
            let name = src.file_stem().unwrap().to_str().unwrap();
            let out = dir.path().join(format!("{name}{fmt}.zarr"));
            let chunks: &[&str] = if name == "awkward" {
                &["--chunks", "x=2"]
            } else {
                &[]
            };
            convert(&[src], &out, fmt, chunks);
            for ranks in [None, Some(2)] {
                assert_identical(&verify(ranks, &[src], &out));
            }
        }
    }
}

#[test]
fn several_files_verify_identical_in_any_order() {
    let dir = tmp();
    // Files in other time units than the first: the store re-encodes them.
    let files = series(&dir.path().join("in"), "u", &[2, 3, 1, 2], |i, p| {
        p.units = match i {
            1 => "days since 2000-01-01 00:00:00".into(),
            2 => "hours since 2000-01-01 05:00:00".into(),
            3 => "minutes since 2000-01-01 06:00:00".into(),
            _ => p.units.clone(),
        };
    });
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let glob = format!("{}/u*.nc", dir.path().join("in").display());
    for fmt in ["3", "2"] {
        let out = dir.path().join(format!("o{fmt}.zarr"));
        convert(&[Path::new(&glob)], &out, fmt, &[]);
        assert_identical(&verify(None, &[Path::new(&glob)], &out));
        let mut reversed = refs.clone();
        reversed.reverse();
        assert_identical(&verify(Some(2), &reversed, &out));
        // A file left out: its steps come from no source.
        let r = verify(None, &refs[..3], &out);
        assert_reports(
            &r,
            &["'t2m': store indices 6..8 along 'time' come from no source file"],
        );
    }
    // Variable families merged along one time axis.
    let merged = dir.path().join("merged");
    let _ = series(&merged, "t2m_", &[2, 2], |_, p| p.vars = vec!["t2m"]);
    let _ = series(&merged, "u10_", &[2, 2], |_, p| p.vars = vec!["u10"]);
    let glob = format!("{}/*.nc", merged.display());
    let out = dir.path().join("merged.zarr");
    convert(&[Path::new(&glob)], &out, "3", &[]);
    assert_identical(&verify(Some(2), &[Path::new(&glob)], &out));
}

#[test]
fn a_wrong_fill_value_is_reported() {
    let dir = tmp();
    let src = cdl_fixture(dir.path());
    for fmt in ["3", "2"] {
        let clean = dir.path().join(format!("clean{fmt}.zarr"));
        convert(&[&src], &clean, fmt, &[]);
        let bad = copy(&clean, &dir.path().join(format!("bad{fmt}.zarr")));
        // 0 instead of -32767: readers mask the real zeros of `packed`.
        let fault = if fmt == "3" {
            edit(&bad.join("packed/zarr.json"), |v| {
                v["attributes"]["_FillValue"] = 0.into();
            });
            "'packed' attribute '_FillValue': store 0, sources -32767 (short)"
        } else {
            edit(&bad.join("packed/.zarray"), |v| v["fill_value"] = 0.into());
            "'packed' fill_value: store 0, sources -32767 (short)"
        };
        // The raw bytes are unchanged: only decoding shows the fault.
        for ranks in [None, Some(2)] {
            let r = verify(ranks, &[&src], &bad);
            assert_reports(
                &r,
                &[
                    fault,
                    "5 value(s) differ",
                    "packed[0, 0, 0]: decoded by readers: source 273.149",
                    "store masked (raw 0)",
                ],
            );
        }
    }
}

#[test]
fn a_float_attribute_turned_into_a_string_is_reported() {
    let dir = tmp();
    let src = cdl_fixture(dir.path());
    let clean = dir.path().join("clean.zarr");
    convert(&[&src], &clean, "3", &[]);
    let bad = copy(&clean, &dir.path().join("bad.zarr"));
    edit(&bad.join("zarr.json"), |v| {
        v["attributes"]["version"] = "1.5".into();
    });
    edit(&bad.join("temp/zarr.json"), |v| {
        v["attributes"]["valid_max"] = "NaN".into();
    });
    let r = verify(None, &[&src], &bad);
    assert_reports(
        &r,
        &[
            "global attribute 'version': store \"1.5\", sources 1.5 (float) (a float in the sources, a string in the store)",
            "'temp' attribute 'valid_max': store \"NaN\", sources 400.0 (float) (a float in the sources, a string in the store)",
            "2 metadata difference(s)",
        ],
    );
    // A NaN attribute, written as the bare token Python's json writes (and
    // reads back as a float), rewritten as the string "NaN".
    let awkward = ncgen(dir.path(), "awkward", AWKWARD_CDL);
    let clean = dir.path().join("awkward.zarr");
    convert(&[&awkward], &clean, "3", &["--chunks", "x=2"]);
    assert_identical(&verify(None, &[&awkward], &clean));
    let root = clean.join("zarr.json");
    let text = std::fs::read_to_string(&root).unwrap();
    assert!(text.contains("\"nan_attr\": NaN"), "{text}");
    std::fs::write(
        &root,
        text.replace("\"nan_attr\": NaN", "\"nan_attr\": \"NaN\""),
    )
    .unwrap();
    assert_reports(
        &verify(None, &[&awkward], &clean),
        &["global attribute 'nan_attr': store \"NaN\", sources NaN (float) (a float in the sources, a string in the store)"],
    );
    // The same in Zarr v2 (.zattrs).
    let clean2 = dir.path().join("clean2.zarr");
    convert(&[&src], &clean2, "2", &[]);
    let bad2 = copy(&clean2, &dir.path().join("bad2.zarr"));
    edit(&bad2.join("packed/.zattrs"), |v| {
        v["scale_factor"] = "0.01".into();
    });
    let r = verify(Some(2), &[&src], &bad2);
    assert_reports(
        &r,
        &["'packed' attribute 'scale_factor': store \"0.01\", sources 0.01 (float) (a float in the sources, a string in the store)"],
    );
}

#[test]
fn a_dropped_fill_value_is_reported() {
    let dir = tmp();
    let src = cdl_fixture(dir.path());
    for fmt in ["3", "2"] {
        let clean = dir.path().join(format!("clean{fmt}.zarr"));
        convert(&[&src], &clean, fmt, &[]);
        let bad = copy(&clean, &dir.path().join(format!("bad{fmt}.zarr")));
        let fault = if fmt == "3" {
            edit(&bad.join("temp/zarr.json"), |v| {
                v["attributes"]
                    .as_object_mut()
                    .unwrap()
                    .remove("_FillValue");
            });
            "'temp' attribute '_FillValue' is missing from the store"
        } else {
            edit(&bad.join("temp/.zarray"), |v| v["fill_value"] = Value::Null);
            "'temp' fill_value is missing from the store"
        };
        let r = verify(None, &[&src], &bad);
        assert_reports(
            &r,
            &[
                fault,
                "readers no longer mask the fill",
                "temp[1, 0, 0]: decoded by readers: source masked, store 1.0000000200408773e20",
            ],
        );
    }
}

#[test]
fn damaged_and_missing_chunks_are_reported() {
    let dir = tmp();
    let src = cdl_fixture(dir.path());
    for fmt in ["3", "2"] {
        let clean = dir.path().join(format!("clean{fmt}.zarr"));
        convert(&[&src], &clean, fmt, &["--codec", "none"]);
        let key = |v3: &str, v2: &str| {
            if fmt == "3" {
                v3.to_string()
            } else {
                v2.to_string()
            }
        };
        // One byte of a chunk changed: the first value of packed's chunk
        // (1, 1, 0), i.e. packed[2, 2, 0] (raw 8), gets another low bit.
        let bad = copy(&clean, &dir.path().join(format!("byte{fmt}.zarr")));
        let chunk = bad.join(key("packed/c/1/1/0", "packed/1.1.0"));
        let mut b = std::fs::read(&chunk).unwrap();
        b[0] ^= 0x01;
        std::fs::write(&chunk, b).unwrap();
        let r = verify(Some(2), &[&src], &bad);
        assert_reports(
            &r,
            &["1 value(s) differ", "packed[2, 2, 0]: source 8, store 9"],
        );
        // A chunk file deleted: readers see the fill value there (one of
        // its 16 elements is the fill value in the source too).
        let bad = copy(&clean, &dir.path().join(format!("gone{fmt}.zarr")));
        std::fs::remove_file(bad.join(key("temp/c/0/0/0", "temp/0.0.0"))).unwrap();
        let r = verify(None, &[&src], &bad);
        assert_reports(
            &r,
            &["15 value(s) differ", "temp[0, 0, 0]: source 1, store 1e20"],
        );
    }
}

#[test]
fn a_changed_data_type_or_structure_is_reported() {
    let dir = tmp();
    let src = cdl_fixture(dir.path());
    let clean = dir.path().join("clean.zarr");
    convert(&[&src], &clean, "3", &[]);
    let bad = copy(&clean, &dir.path().join("bad.zarr"));
    edit(&bad.join("big/zarr.json"), |v| {
        v["data_type"] = "float64".into();
        v["fill_value"] = 0.0.into();
    });
    edit(&bad.join("temp/zarr.json"), |v| {
        v["dimension_names"] = serde_json::json!(["time", "lon", "lat"]);
    });
    std::fs::remove_dir_all(bad.join("label")).unwrap();
    std::fs::create_dir(bad.join("extra")).unwrap();
    std::fs::copy(bad.join("scalar/zarr.json"), bad.join("extra/zarr.json")).unwrap();
    let r = verify(None, &[&src], &bad);
    assert_reports(
        &r,
        &[
            "'big': data type \"float64\" in the store, int64 in the sources",
            "'temp': dimensions [\"time\", \"lon\", \"lat\"] in the store, [\"time\", \"lat\", \"lon\"] in the sources",
            "variable 'label' of the sources is not in the store",
            "array 'extra' is in the store but not in the sources",
        ],
    );
    // Zarr v2: the numpy type code.
    let clean2 = dir.path().join("clean2.zarr");
    convert(&[&src], &clean2, "2", &[]);
    let bad2 = copy(&clean2, &dir.path().join("bad2.zarr"));
    edit(&bad2.join("big/.zarray"), |v| v["dtype"] = "<u8".into());
    let r = verify(Some(2), &[&src], &bad2);
    assert_reports(
        &r,
        &["'big': data type \"<u8\" in the store, int64 in the sources"],
    );
}

#[test]
fn a_recipe_is_honoured() {
    let dir = tmp();
    let _ = series(&dir.path().join("data"), "r", &[2, 2, 2], |_, _| {});
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        r#"
inputs = ["data/r*.nc"]
output = "out.zarr"
include = ["t2m"]
rename = { t2m = "tas", lat = "latitude" }
attributes = { title = "renamed", project = "test" }
remove_attributes = ["source_file"]
history = true

[variables.t2m]
attributes = { long_name = "2 m temperature" }
"#,
    )
    .unwrap();
    let r = zarrforge(
        Some(2),
        &["convert", "--quiet", "--recipe", s(&recipe), "--verify"],
        MINUTE,
    );
    assert_identical(&r);
    let out = dir.path().join("out.zarr");
    let r = zarrforge(None, &["verify", "--recipe", s(&recipe), s(&out)], MINUTE);
    assert_identical(&r);
    // Without the recipe, its renames, selection and edits are differences.
    let glob = format!("{}/r*.nc", dir.path().join("data").display());
    let r = verify(None, &[Path::new(&glob)], &out);
    assert_reports(
        &r,
        &[
            "variable 't2m' of the sources is not in the store",
            "array 'tas' is in the store but not in the sources",
            "global attribute 'title': store \"renamed\", sources \"series\" (char) (text differs)",
        ],
    );
}

#[test]
fn an_append_verifies_its_steps_and_the_whole_store_verifies_after() {
    let dir = tmp();
    let files = series(&dir.path().join("in"), "a", &[2, 3, 1, 2], |_, _| {});
    let out = dir.path().join("o.zarr");
    convert(&[&files[0], &files[1]], &out, "3", &[]);
    let r = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--append",
            "--verify",
            "-o",
            s(&out),
            s(&files[2]),
            s(&files[3]),
        ],
        MINUTE,
    );
    assert_identical(&r);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    assert_identical(&verify(Some(2), &refs, &out));
}
