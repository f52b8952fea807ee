//! What real and damaged files do to a conversion: a netCDF-3 file that
//! holds less than its header promises (truncated on disk, or while the job
//! runs), headers declaring sizes no machine can plan, names that are not
//! UTF-8, NIL strings. Each is refused with one line naming the file, or
//! converted exactly; never a panic, an abort or invented zeros.

use std::path::Path;

use crate::common::*;

/// A netCDF-3 file of `options` with a record variable and a fixed one.
fn classic(path: &Path, options: netcdf::Options) {
    let mut f = netcdf::create_with(path, options).unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("x", 50).unwrap();
    // netCDF-3: every variable is defined before any data is written.
    f.add_variable::<f64>("time", &["time"]).unwrap();
    f.add_variable::<f32>("v", &["time", "x"]).unwrap();
    f.add_variable::<i16>("s", &["x"]).unwrap();
    f.enddef().unwrap();
    let mut t = f.variable_mut("time").unwrap();
    t.put_values(&[0.0, 1.0, 2.0, 3.0], ..).unwrap();
    let vals: Vec<f32> = (0..200).map(|i| i as f32 + 0.5).collect();
    let mut v = f.variable_mut("v").unwrap();
    v.put_values(&vals, (0..4, 0..50)).unwrap();
    let svals: Vec<i16> = (0..50).collect();
    let mut s = f.variable_mut("s").unwrap();
    s.put_values(&svals, ..).unwrap();
    f.close().unwrap();
}

fn refused(ranks: Option<usize>, input: &Path, out: &Path, expect: &[&str]) -> String {
    let run = zarrforge(
        ranks,
        &[
            "convert",
            "--quiet",
            "-o",
            out.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        2 * MINUTE,
    );
    assert_eq!(run.code, Some(3), "{input:?}: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(!run.stderr.contains("memory allocation"), "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    let name = input.file_name().unwrap().to_str().unwrap();
    assert!(errors[0].contains(name), "no file name: {}", errors[0]);
    for e in expect {
        assert!(errors[0].contains(e), "lacks {e:?}: {}", errors[0]);
    }
    assert!(!out.join("zarr.json").exists() && !out.join(".zgroup").exists());
    errors[0].to_string()
}

#[test]
fn truncated_netcdf3_files_are_refused_not_read_as_zeros() {
    let t = tmp();
    for (name, opt) in [
        ("classic.nc", netcdf::Options::CLASSIC),
        ("offset64.nc", netcdf::Options::_64BIT_OFFSET),
        ("cdf5.nc", netcdf::Options::_64BIT_DATA),
    ] {
        let full = t.path().join(name);
        classic(&full, opt);
        let len = std::fs::metadata(&full).unwrap().len();
        // The complete file converts.
        let out = t.path().join(format!("{name}.zarr"));
        let run = zarrforge(
            None,
            &[
                "convert",
                "--quiet",
                "-o",
                out.to_str().unwrap(),
                full.to_str().unwrap(),
            ],
            MINUTE,
        );
        assert!(run.ok(), "{}", run.stderr);
        // Cut inside the last record, and inside the fixed variables.
        for cut in [len - 7, len / 2] {
            let bytes = std::fs::read(&full).unwrap();
            let short = t.path().join(format!("cut{cut}_{name}"));
            std::fs::write(&short, &bytes[..usize::try_from(cut).unwrap()]).unwrap();
            let out = t.path().join(format!("cut{cut}_{name}.zarr"));
            refused(Some(2), &short, &out, &["truncated", "bytes"]);
        }
    }
}

#[test]
fn crafted_headers_promising_huge_sizes_are_refused_at_once() {
    // CDF5: 2^40 records of a variable along a 2^59-element dimension, in a
    // file of a few hundred bytes.
    let mut h: Vec<u8> = b"CDF\x05".to_vec();
    let u64b = |h: &mut Vec<u8>, x: u64| h.extend(x.to_be_bytes());
    let u32b = |h: &mut Vec<u8>, x: u32| h.extend(x.to_be_bytes());
    let name = |h: &mut Vec<u8>, s: &[u8]| {
        h.extend((s.len() as u64).to_be_bytes());
        h.extend(s);
        while !h.len().is_multiple_of(4) {
            h.push(0);
        }
    };
    u64b(&mut h, 1 << 40);
    u32b(&mut h, 0x0A);
    u64b(&mut h, 2);
    name(&mut h, b"t");
    u64b(&mut h, 0);
    name(&mut h, b"n");
    u64b(&mut h, 1 << 59);
    u32b(&mut h, 0);
    u64b(&mut h, 0);
    u32b(&mut h, 0x0B);
    u64b(&mut h, 1);
    name(&mut h, b"v");
    u64b(&mut h, 2);
    u64b(&mut h, 0);
    u64b(&mut h, 1);
    u32b(&mut h, 0);
    u64b(&mut h, 0);
    u32b(&mut h, 6);
    u64b(&mut h, 8);
    let begin = h.len() as u64 + 8;
    u64b(&mut h, begin);
    h.resize(h.len() + 64, 0);
    let t = tmp();
    let input = t.path().join("huge.nc");
    std::fs::write(&input, &h).unwrap();
    refused(None, &input, &t.path().join("o.zarr"), &["truncated"]);
    refused(Some(2), &input, &t.path().join("o2.zarr"), &["truncated"]);
    let run = zarrforge(None, &["plan", input.to_str().unwrap()], MINUTE);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("huge.nc"), "{}", run.stderr);
}

#[test]
fn names_that_are_not_utf8_are_refused_naming_the_file() {
    let t = tmp();
    let good = t.path().join("good.nc");
    classic(&good, netcdf::Options::CLASSIC);
    let mut bytes = std::fs::read(&good).unwrap();
    // The variable name "s" (length 1, then 's' and 3 pad bytes).
    let at = bytes
        .windows(8)
        .position(|w| w == [0, 0, 0, 1, b's', 0, 0, 0])
        .unwrap();
    bytes[at + 4] = 0xff;
    let bad = t.path().join("bad_name.nc");
    std::fs::write(&bad, &bytes).unwrap();
    refused(Some(2), &bad, &t.path().join("o.zarr"), &["UTF-8"]);
    let run = zarrforge(None, &["inspect", bad.to_str().unwrap()], MINUTE);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn a_file_truncated_after_the_scan_fails_the_read() {
    let t = tmp();
    let path = t.path().join("shrinks.nc");
    classic(&path, netcdf::Options::CLASSIC);
    let schema = zarrforge::pipeline::scan::structure::read_schema(&path, false).unwrap();
    let var = schema
        .vars()
        .into_iter()
        .find(|v| v.name == "v")
        .unwrap()
        .clone();
    let reader = zarrforge::pipeline::read::netcdf3::NetcdfReader::open(
        &path,
        zarrforge::model::schema::SourceFormat::Netcdf3,
    )
    .unwrap();
    assert!(reader.read(&var, &[0, 0], &[4, 50]).is_ok());
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 100).unwrap();
    let e = reader
        .read(&var, &[0, 0], &[1, 50])
        .unwrap_err()
        .to_string();
    assert!(e.contains("shrank") && e.contains("shrinks.nc"), "{e}");
}

#[test]
fn nil_strings_read_as_empty_strings() {
    let t = tmp();
    let path = t.path().join("nil.nc");
    {
        let mut f = netcdf::create(&path).unwrap();
        f.add_dimension("x", 3).unwrap();
        let mut v = f.add_string_variable("s", &["x"]).unwrap();
        v.put_string("middle", [1]).unwrap();
    }
    for ranks in [None, Some(2)] {
        let out = t.path().join(format!("o{ranks:?}.zarr"));
        let run = zarrforge(
            ranks,
            &[
                "convert",
                "--quiet",
                "-o",
                out.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
            MINUTE,
        );
        assert!(run.ok(), "{}", run.stderr);
        let store = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(&out).unwrap());
        let a = zarrs::array::Array::open(store, "/s").unwrap();
        let got: Vec<String> = a.retrieve_array_subset(&a.subset_all()).unwrap();
        assert_eq!(got, vec![String::new(), "middle".into(), String::new()]);
    }
}

/// netCDF-C's `tst_group_data.nc`: `g2/g3/var2(/dim, /g2/dim, dim)` uses
/// three dimensions named `dim`, of three groups. Zarr names a dimension
/// without its group, so the store has `["dim", "dim", "dim"]`: the values
/// are converted exactly, and a warning names the variables and what xarray
/// does with the group.
#[test]
fn one_name_for_dimensions_of_three_groups_is_warned() {
    let dir = tmp();
    let cdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/cdl/ref_tst_group_data.cdl");
    let src = dir.path().join("tst_group_data.nc");
    let st = std::process::Command::new("ncgen")
        .args(["-4", "-o", src.to_str().unwrap(), cdl.to_str().unwrap()])
        .status()
        .expect("ncgen (netcdf-bin) is needed by this test");
    assert!(st.success());
    let out = dir.path().join("g.zarr");
    let report = dir.path().join("r.json");
    let run = zarrforge(
        Some(2),
        &[
            "convert",
            "--quiet",
            "--report",
            report.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
        MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    let warning = "group 'g2/g3': dimensions /dim (length 4), /g2/dim (length 2) and /g2/g3/dim (length 3) are all named 'dim' in the store (Zarr names a dimension without its group), used by variables 'g2/g3/var' and 'g2/g3/var2'; xarray cannot open the group (conflicting sizes for dimension 'dim'); zarr-python reads every array as it is";
    assert_eq!(
        run.stderr
            .matches(&format!("zarrforge: warning: {warning}"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    let r = json(&report);
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str() == Some(warning)),
        "{r}"
    );
    let meta = json(&out.join("g2/g3/var2/zarr.json"));
    assert_eq!(
        meta["dimension_names"],
        serde_json::json!(["dim", "dim", "dim"])
    );
    for var in ["var", "g1/var", "g2/var", "g2/g3/var", "g2/g3/var2"] {
        assert_eq!(store_bytes(&out, var), source_bytes(&src, var), "{var}");
    }
    let run = zarrforge(
        None,
        &["verify", src.to_str().unwrap(), out.to_str().unwrap()],
        MINUTE,
    );
    assert!(run.ok(), "{}\n{}", run.stdout, run.stderr);
}
