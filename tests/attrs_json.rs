//! `--attrs-json`: how NaN and infinite float attributes are written. By
//! default (`python`) as the bare tokens Python's `json` writes and reads
//! back as floats; with `strict` as the strings "NaN", "Infinity",
//! "-Infinity", so that every metadata document, the consolidated metadata
//! included, is strict JSON. `verify` checks each way, an append keeps the
//! store's way unless told otherwise, and a recipe can ask for it. (What
//! zarr-python, xarray, tensorstore and zarrita read from each:
//! tests/interop/nonfinite.py, run by scripts/interop.)

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// Two steps starting at hour `t0`, with NaN and infinite float attributes
/// on a variable, on the root group and on a nested group, a NaN fill value
/// and a -Infinity `missing_value`.
fn part(dir: &Path, name: &str, t0: u32) -> PathBuf {
    let cdl = format!(
        r#"netcdf {name} {{
dimensions:
  time = UNLIMITED ; x = 3 ;
variables:
  double time(time) ; time:units = "hours since 2000-01-01" ;
  float temp(time, x) ; temp:_FillValue = NaNf ; temp:valid_max = Infinityf ;
    temp:actual_range = NaN, 1. ;
  double flux(time, x) ; flux:missing_value = -Infinity ;
  :nan_attr = NaNf ; :inf_attrs = Infinity, -Infinity, 1. ;
data:
  time = {t0}, {t1} ;
  temp = 1, NaN, 3, 4, 5, Infinity ;
  flux = 1, 2, -Infinity, 4, 5, 6 ;
group: g {{
  variables: float p(x) ; p:bound = -Infinity ;
  :g_nan = NaN ;
  data: p = 1, 2, 3 ;
  }}
}}
"#,
        t1 = t0 + 1
    );
    let cdl_path = dir.join(format!("{name}.cdl"));
    let nc = dir.join(format!("{name}.nc"));
    std::fs::write(&cdl_path, cdl).unwrap();
    let st = std::process::Command::new("ncgen")
        .args(["-4", "-o", s(&nc), s(&cdl_path)])
        .status()
        .expect("ncgen (netcdf-bin) is needed by this test");
    assert!(st.success());
    nc
}

/// Every metadata document of a store (its own `.zarrforge/` aside), with
/// whether a strict JSON parser takes it.
fn documents(store: &Path) -> Vec<(String, bool)> {
    let names = ["zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"];
    let mut out = Vec::new();
    for (rel, bytes) in snapshot(store) {
        let name = rel.file_name().unwrap().to_str().unwrap();
        if rel.starts_with(".zarrforge") || !names.contains(&name) {
            continue;
        }
        let strict = serde_json::from_slice::<Value>(&bytes).is_ok();
        out.push((rel.to_str().unwrap().to_string(), strict));
    }
    out.sort();
    out
}

fn not_strict(store: &Path) -> Vec<String> {
    documents(store)
        .into_iter()
        .filter(|(_, strict)| !strict)
        .map(|(k, _)| k)
        .collect()
}

fn root_attrs(store: &Path, v3: bool) -> Value {
    if v3 {
        json(&store.join("zarr.json"))["attributes"].clone()
    } else {
        json(&store.join(".zattrs"))
    }
}

#[test]
fn strict_stores_are_strict_json_and_verify() {
    let dir = tmp();
    let src = part(dir.path(), "a", 0);
    for v3 in [true, false] {
        let format = if v3 { "3" } else { "2" };
        // The default: bare tokens where the attributes are (the
        // consolidated metadata too), nowhere else.
        let python = dir.path().join(format!("python{format}.zarr"));
        let r = zarrforge(
            None,
            &[
                "convert",
                "--quiet",
                "--zarr-format",
                format,
                "-o",
                s(&python),
                s(&src),
            ],
            MINUTE,
        );
        assert!(r.ok(), "{}", r.stderr);
        let want: &[&str] = if v3 {
            &[
                "flux/zarr.json",
                "g/p/zarr.json",
                "g/zarr.json",
                "temp/zarr.json",
                "zarr.json",
            ]
        } else {
            &[
                ".zattrs",
                ".zmetadata",
                "flux/.zattrs",
                "g/.zattrs",
                "g/p/.zattrs",
                "temp/.zattrs",
            ]
        };
        assert_eq!(not_strict(&python), want);
        // Strict, asked for by a recipe in v2: strings, every document
        // strict JSON, verified right after the commit.
        let strict = dir.path().join(format!("strict{format}.zarr"));
        let recipe = dir.path().join(format!("strict{format}.toml"));
        std::fs::write(
            &recipe,
            format!(
                "inputs = [{:?}]\noutput = {:?}\nzarr_format = {format}\nattrs_json = \"strict\"\n",
                s(&src),
                s(&strict)
            ),
        )
        .unwrap();
        let args: Vec<&str> = if v3 {
            vec![
                "convert",
                "--attrs-json",
                "strict",
                "--verify",
                "--quiet",
                "-o",
                s(&strict),
                s(&src),
            ]
        } else {
            vec!["convert", "--verify", "--quiet", "--recipe", s(&recipe)]
        };
        let r = zarrforge(Some(2), &args, MINUTE);
        assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("identical"), "{}", r.stdout);
        // Each variable or group with such attributes is named once.
        assert!(
            r.stderr.contains(
                "variable 'flux': missing_value = \"-Infinity\" written with text for NaN and infinity (--attrs-json strict)"
            ),
            "{}",
            r.stderr
        );
        assert_eq!(
            r.stderr.matches("(--attrs-json strict)").count(),
            5,
            "{}",
            r.stderr
        );
        assert_eq!(documents(&strict).len(), if v3 { 6 } else { 13 });
        assert_eq!(not_strict(&strict), Vec::<String>::new());
        let attrs = root_attrs(&strict, v3);
        assert_eq!(attrs["nan_attr"], "NaN");
        assert_eq!(
            attrs["inf_attrs"],
            serde_json::json!(["Infinity", "-Infinity", 1.0])
        );
        // Fill values keep the spec's form either way.
        let temp = if v3 {
            json(&strict.join("temp/zarr.json"))
        } else {
            json(&strict.join("temp/.zarray"))
        };
        assert_eq!(temp["fill_value"], "NaN");

        // verify: each store with its own way; the other way is reported.
        let verify = |store: &Path, extra: &[&str]| {
            let mut args = vec!["verify", "--quiet"];
            args.extend_from_slice(extra);
            args.extend([s(&src), s(store)]);
            zarrforge(None, &args, MINUTE)
        };
        let r = verify(&strict, &["--attrs-json", "strict"]);
        assert!(
            r.ok() && r.stdout.contains("identical"),
            "{}{}",
            r.stdout,
            r.stderr
        );
        let r = verify(&python, &[]);
        assert!(
            r.ok() && r.stdout.contains("identical"),
            "{}{}",
            r.stdout,
            r.stderr
        );
        let r = verify(&strict, &[]);
        assert!(!r.ok());
        assert!(
            r.stdout.contains(
                "global attribute 'nan_attr': store \"NaN\", sources NaN (float) (a float in the sources, a string in the store); a store converted with --attrs-json strict is verified with --attrs-json strict"
            ),
            "{}",
            r.stdout
        );
        let r = verify(&python, &["--attrs-json", "strict"]);
        assert!(!r.ok());
        let key = if v3 { "temp/zarr.json" } else { "temp/.zattrs" };
        assert!(
            r.stdout.contains(&format!(
                "{key}: a bare NaN, Infinity or -Infinity: not strict JSON"
            )),
            "{}",
            r.stdout
        );
        if !v3 {
            assert!(r.stdout.contains(".zmetadata: a bare NaN"), "{}", r.stdout);
        }
    }
}

#[test]
fn an_append_keeps_the_stores_way_unless_told_otherwise() {
    let dir = tmp();
    let a = part(dir.path(), "a", 0);
    let b = part(dir.path(), "b", 2);
    let c = part(dir.path(), "c", 4);
    let store = dir.path().join("s.zarr");
    let convert = |args: &[&str]| {
        let r = zarrforge(Some(2), args, MINUTE);
        assert!(r.ok(), "{}\n{}", r.stdout, r.stderr);
        r
    };
    convert(&[
        "convert",
        "--quiet",
        "--attrs-json",
        "strict",
        "--chunks",
        "time=2",
        "-o",
        s(&store),
        s(&a),
    ]);
    // No flag: the store's strict way, and convert --verify verifies it so.
    let r = convert(&[
        "convert",
        "--quiet",
        "--append",
        "--verify",
        "-o",
        s(&store),
        s(&b),
    ]);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
    assert_eq!(not_strict(&store), Vec::<String>::new());
    assert_eq!(
        json(&store.join("zarr.json"))["consolidated_metadata"]["metadata"]["time"]["shape"],
        serde_json::json!([4])
    );
    // Told otherwise: every document is rewritten the python way.
    convert(&[
        "convert",
        "--quiet",
        "--append",
        "--attrs-json",
        "python",
        "-o",
        s(&store),
        s(&c),
    ]);
    assert!(not_strict(&store).contains(&"zarr.json".to_string()));
    let text = std::fs::read_to_string(store.join("temp/zarr.json")).unwrap();
    assert!(text.contains("\"valid_max\": Infinity"), "{text}");
    let r = zarrforge(
        None,
        &["verify", "--quiet", s(&a), s(&b), s(&c), s(&store)],
        MINUTE,
    );
    assert!(
        r.ok() && r.stdout.contains("identical"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
