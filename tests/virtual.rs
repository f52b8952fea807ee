//! Virtual references (`convert --virtual`): an Icechunk repository or a
//! kerchunk JSON file whose chunks point into the netCDF inputs. Each
//! scenario converts, then reads every value back through the references
//! with `zarrforge verify` (and, for kerchunk, checks the reference entries
//! themselves against the files' bytes): a series of generated files on 1, 2
//! and 3 ranks; files that differ in their filters or whose chunks do not
//! tile the concatenation (copied with a warning, or refused); netCDF-3
//! records; `--virtual-prefix`; appends, one of them refused; wrong uses.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::io::Read;
use std::path::{Path, PathBuf};

use netcdf::Extents;

use crate::common::*;

/// `zarrforge generate` with small lat/lon: `steps` hourly steps from day
/// `t0`, deflate level `deflate`.
fn generate(out: &Path, steps: usize, t0: f64, deflate: u32) {
    let (steps, t0, deflate) = (steps.to_string(), t0.to_string(), deflate.to_string());
    let r = zarrforge(
        None,
        &[
            "generate",
            "--time",
            &steps,
            "--lat",
            "6",
            "--lon",
            "8",
            "--t0",
            &t0,
            "--deflate",
            &deflate,
            s(out),
        ],
        MINUTE,
    );
    assert!(r.ok(), "generate {}: {}", out.display(), r.stderr);
}

/// Steps per generated file: 12 hourly steps are half a day, so file `i`
/// starts at day `i / 2` and the series has no gap.
const STEPS: usize = 12;

/// Generates files in `dir`, one per deflate level of `levels`, consecutive
/// in time, named so that the name order is not the time order. Returns the
/// paths in time order.
fn generated(dir: &Path, levels: &[u32]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    levels
        .iter()
        .enumerate()
        .map(|(i, &level)| {
            let p = dir.join(format!("gen{:02}.nc", (i * 7 + 3) % 10));
            generate(&p, STEPS, i as f64 * 0.5, level);
            p
        })
        .collect()
}

/// `convert --quiet --virtual --virtual-copy-below 0 EXTRA -o OUT INPUTS`.
fn convert(ranks: Option<usize>, extra: &[&str], out: &Path, inputs: &[PathBuf]) -> Run {
    let mut args = vec![
        "convert",
        "--quiet",
        "--virtual",
        "--virtual-copy-below",
        "0",
    ];
    args.extend_from_slice(extra);
    args.extend(["-o", s(out)]);
    args.extend(inputs.iter().map(|p| s(p)));
    zarrforge(ranks, &args, 3 * MINUTE)
}

/// `verify [--icechunk] SOURCES OUT`.
fn verify(ranks: Option<usize>, icechunk: bool, sources: &[PathBuf], out: &Path) -> Run {
    let mut args = vec!["verify", "--quiet"];
    if icechunk {
        args.push("--icechunk");
    }
    args.extend(sources.iter().map(|p| s(p)));
    args.push(s(out));
    zarrforge(ranks, &args, 3 * MINUTE)
}

fn assert_identical(r: &Run, what: &str) {
    assert!(
        r.ok() && r.stdout.contains("identical"),
        "{what}: verify failed ({:?})\n{}{}",
        r.code,
        r.stdout,
        r.stderr
    );
}

/// zarrforge's own lines of stderr (mpirun adds its banners).
fn own_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("zarrforge"))
        .collect()
}

/// The `refs` object of a kerchunk v1 file.
fn refs(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    let j = json(path);
    assert_eq!(j["version"], 1, "{}: kerchunk version", path.display());
    j["refs"].as_object().unwrap().clone()
}

/// The parsed `[url, offset, length]` of a reference entry, or `None` for
/// an inline one (metadata text or `base64:` chunk).
fn reference(v: &serde_json::Value) -> Option<(String, u64, u64)> {
    let a = v.as_array()?;
    assert_eq!(a.len(), 3, "a reference is [url, offset, length]: {v}");
    Some((
        a[0].as_str().unwrap().to_string(),
        a[1].as_u64().unwrap(),
        a[2].as_u64().unwrap(),
    ))
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

/// `len` bytes of `path` at `offset`.
fn read_at(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    let (o, l) = (
        usize::try_from(offset).unwrap(),
        usize::try_from(len).unwrap(),
    );
    assert!(
        o + l <= b.len(),
        "{}: [{o}, +{l}] past the end",
        path.display()
    );
    b[o..o + l].to_vec()
}

/// Undoes HDF5's zlib then shuffle (element size `es`) of a stored chunk.
fn unzlib_unshuffle(stored: &[u8], es: usize) -> Vec<u8> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(stored)
        .read_to_end(&mut raw)
        .unwrap();
    let n = raw.len() / es;
    let mut out = vec![0; raw.len()];
    for i in 0..n {
        for b in 0..es {
            out[i * es + b] = raw[b * n + i];
        }
    }
    out
}

/// The URL prefixes of the virtual chunk containers declared in an
/// Icechunk repository's configuration.
fn containers(repo: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let st = icechunk::new_local_filesystem_storage(&repo.canonicalize().unwrap())
            .await
            .unwrap();
        let (config, _) = icechunk::Repository::fetch_config(st)
            .await
            .unwrap()
            .expect("the repository has a config");
        let mut v: Vec<String> = config
            .virtual_chunk_containers()
            .map(|c| c.url_prefix().to_string())
            .collect();
        v.sort();
        v
    })
}

/// The data variables of `zarrforge generate` (coordinates: time, lat, lon).
const DATA_VARS: [&str; 3] = ["t2m", "u10", "msl"];
const COORDS: [&str; 3] = ["time", "lat", "lon"];

#[test]
fn a_series_is_referenced_on_1_2_3_ranks_in_both_outputs() {
    let dir = tmp();
    let files = generated(&dir.path().join("data"), &[4, 4, 4, 4]);
    // The inputs are named through a symbolic link: the references must
    // hold the files' canonical paths.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("data"), &link).unwrap();
    let via_link: Vec<PathBuf> = files
        .iter()
        .map(|f| link.join(f.file_name().unwrap()))
        .collect();
    let canonical_dir = format!(
        "file://{}/",
        dir.path().join("data").canonicalize().unwrap().display()
    );
    let mut first_refs = None;
    for ranks in [1, 2, 3] {
        // Icechunk.
        let repo = dir.path().join(format!("r{ranks}.icechunk"));
        let r = convert(Some(ranks), &["--icechunk"], &repo, &via_link);
        assert!(r.ok(), "{ranks} ranks: {}", r.stderr);
        assert!(
            !r.stderr.contains("warning: variable"),
            "{ranks} ranks: nothing is copied: {}",
            r.stderr
        );
        assert_eq!(
            containers(&repo),
            vec![canonical_dir.clone()],
            "{ranks} ranks: the container is the inputs' canonical directory"
        );
        assert_identical(&verify(Some(ranks), true, &files, &repo), "icechunk");

        // kerchunk.
        let json = dir.path().join(format!("refs{ranks}.json"));
        let r = convert(Some(ranks), &[], &json, &via_link);
        assert!(r.ok(), "{ranks} ranks: {}", r.stderr);
        assert!(
            dir.path()
                .join(format!(".refs{ranks}.json.zarrforge"))
                .is_dir(),
            "the staging store beside the reference file"
        );
        assert_identical(&verify(Some(ranks), false, &files, &json), "kerchunk");
        let m = refs(&json);
        // Every step of every data variable is one reference into the file
        // that holds it (in time order), and the bytes there decode to the
        // source's values.
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .collect();
        for var in DATA_VARS {
            let meta: serde_json::Value =
                serde_json::from_str(m[&format!("{var}/.zarray")].as_str().unwrap()).unwrap();
            assert_eq!(meta["shape"][0], (STEPS * files.len()) as u64, "{var}");
            assert_eq!(meta["chunks"], serde_json::json!([1, 6, 8]), "{var}");
            let n_keys = m
                .keys()
                .filter(|k| k.starts_with(&format!("{var}/")) && !k.contains("/."))
                .count();
            assert_eq!(n_keys, STEPS * files.len(), "{var}: one key per step");
            for step in 0..STEPS * files.len() {
                let key = format!("{var}/{step}.0.0");
                let v = m
                    .get(&key)
                    .unwrap_or_else(|| panic!("{ranks} ranks: {key} missing"));
                let (url, offset, len) =
                    reference(v).unwrap_or_else(|| panic!("{key} is not a reference: {v}"));
                let f = step / STEPS;
                assert_eq!(url, file_url(&files[f]), "{key}");
                assert!(
                    len > 0 && offset + len <= sizes[f],
                    "{key}: {offset}+{len} in {}",
                    sizes[f]
                );
                if var == "t2m" {
                    let got = unzlib_unshuffle(&read_at(&files[f], offset, len), 4);
                    let (_, all) = source_bytes(&files[f], var);
                    let per = 6 * 8 * 4;
                    let k = step % STEPS;
                    assert!(
                        got == all[k * per..(k + 1) * per],
                        "{key}: the referenced bytes are not step {k} of {}",
                        files[f].display()
                    );
                }
            }
        }
        // Inline chunks are the copied coordinates' only.
        for (k, v) in &m {
            if k.rsplit('/').next().unwrap().starts_with('.') {
                continue;
            }
            let var = k.split('/').next().unwrap();
            match v.as_str() {
                Some(text) => {
                    assert!(text.starts_with("base64:"), "{k}: {text}");
                    assert!(COORDS.contains(&var), "{k} is inline but not a coordinate");
                }
                None => assert!(
                    !COORDS.contains(&var),
                    "{k}: a coordinate is referenced, not copied"
                ),
            }
        }
        for c in COORDS {
            assert!(
                m.get(&format!("{c}/0")).and_then(|v| v.as_str()).is_some(),
                "{c} is copied inline"
            );
        }
        // The same references whatever the rank count.
        match &first_refs {
            None => first_refs = Some(m),
            Some(first) => assert!(first == &m, "{ranks} ranks: other references than 1 rank"),
        }
    }

    // verify reads through the references: a reference moved to the next
    // step's chunk is a difference.
    let mut j = json(&dir.path().join("refs1.json"));
    let next = j["refs"]["t2m/14.0.0"].clone();
    j["refs"]["t2m/13.0.0"] = next;
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&j).unwrap()).unwrap();
    let r = verify(None, false, &files, &bad);
    assert_eq!(
        r.code,
        Some(1),
        "a wrong reference: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("t2m[13,"), "{}", r.stdout);

    // Under the default threshold (64 KiB) these small variables are
    // copied: no reference at all.
    let small = dir.path().join("small.json");
    let mut args = vec!["convert", "--quiet", "--virtual", "-o", s(&small)];
    args.extend(files.iter().map(|p| s(p)));
    let r = zarrforge(None, &args, MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let m = refs(&small);
    assert!(
        m.values().all(|v| reference(v).is_none()),
        "variables below --virtual-copy-below are copied"
    );
    assert_identical(&verify(None, false, &files, &small), "copied");
}

#[test]
fn files_with_another_deflate_level_are_copied_or_refused() {
    let dir = tmp();
    // The third file in time order is deflated at level 1, the others at 4.
    let files = generated(&dir.path().join("in"), &[4, 4, 1, 4]);
    let odd = files[2].file_name().unwrap().to_str().unwrap().to_string();
    let first = files[0].file_name().unwrap().to_str().unwrap().to_string();
    for ranks in [None, Some(3)] {
        // refuse: exit 3, one line naming the variable, the file and the
        // property, nothing written.
        let repo = dir.path().join(format!("refused-{ranks:?}.icechunk"));
        let r = convert(
            ranks,
            &["--icechunk", "--virtual-fallback", "refuse"],
            &repo,
            &files,
        );
        assert_eq!(r.code, Some(3), "{ranks:?}: {}", r.stderr);
        let lines = own_lines(&r.stderr);
        assert_eq!(lines.len(), 1, "{ranks:?}: one line: {lines:?}");
        let line = lines[0];
        assert!(
            line.contains("variable 't2m' cannot be referenced:")
                && line.contains(&odd)
                && line.contains("zlib(1)")
                && line.ends_with("(--virtual-fallback copy copies it instead)"),
            "{ranks:?}: {line}"
        );
        let (differing, _) = line.split_once(" but ").unwrap();
        assert!(
            differing.contains(&odd) && !differing.contains(&first),
            "the differing file is named first: {line}"
        );
        assert!(
            !repo.exists(),
            "{ranks:?}: a refused run created the repository"
        );

        // kerchunk cannot hold a copy: refused under either mode.
        for mode in ["refuse", "copy"] {
            let json = dir.path().join(format!("refs-{mode}-{ranks:?}.json"));
            let r = convert(ranks, &["--virtual-fallback", mode], &json, &files);
            assert_eq!(r.code, Some(3), "{mode} {ranks:?}: {}", r.stderr);
            let lines = own_lines(&r.stderr);
            assert_eq!(lines.len(), 1, "{mode} {ranks:?}: {lines:?}");
            assert!(
                lines[0].contains("variable 't2m' cannot be referenced:")
                    && lines[0].contains(&odd)
                    && lines[0].contains("a kerchunk reference file cannot hold its copied values"),
                "{mode} {ranks:?}: {}",
                lines[0]
            );
            assert!(!json.exists(), "{mode} {ranks:?}: refs.json written");
            let staging = dir.path().join(format!(
                ".{}.zarrforge",
                json.file_name().unwrap().to_str().unwrap()
            ));
            assert!(!staging.exists(), "{mode} {ranks:?}: staging store left");
        }

        // copy (the default): one warning per variable, naming the file;
        // the values read back identical.
        let repo = dir.path().join(format!("copied-{ranks:?}.icechunk"));
        let r = convert(ranks, &["--icechunk"], &repo, &files);
        assert!(r.ok(), "{ranks:?}: {}", r.stderr);
        for var in DATA_VARS {
            let w: Vec<&str> = own_lines(&r.stderr)
                .into_iter()
                .filter(|l| {
                    l.starts_with(&format!(
                        "zarrforge: warning: variable '{var}' is copied, not referenced: "
                    ))
                })
                .collect();
            assert_eq!(w.len(), 1, "{ranks:?}: one warning for {var}: {}", r.stderr);
            assert!(w[0].contains(&odd), "{}", w[0]);
        }
        assert_identical(&verify(ranks, true, &files, &repo), "copied");
    }
}

/// A netCDF-4 file of `n` hourly steps from hour `t0` with `tas` chunked
/// `chunk_t` steps at a time.
fn tiled_file(path: &Path, t0: usize, n: usize, chunk_t: usize) {
    let mut f = netcdf::create(path).unwrap();
    f.add_unlimited_dimension("time").unwrap();
    f.add_dimension("lat", 4).unwrap();
    f.add_dimension("lon", 5).unwrap();
    {
        let mut t = f.add_variable::<f64>("time", &["time"]).unwrap();
        t.put_attribute("units", "hours since 2000-01-01").unwrap();
        let v: Vec<f64> = (t0..t0 + n).map(|h| h as f64).collect();
        t.put_values(&v, Extents::from(0..n)).unwrap();
    }
    {
        let mut v = f.add_variable::<f32>("lat", &["lat"]).unwrap();
        v.put_values(&[0.0f32, 10.0, 20.0, 30.0], Extents::from(0..4))
            .unwrap();
    }
    {
        let mut v = f
            .add_variable::<f32>("tas", &["time", "lat", "lon"])
            .unwrap();
        v.set_chunking(&[chunk_t, 4, 5]).unwrap();
        v.set_compression(2, true).unwrap();
        let d: Vec<f32> = (0..n * 20).map(|i| val(t0 * 20 + i, 9) as f32).collect();
        v.put_values(&d, Extents::from([0..n, 0..4, 0..5])).unwrap();
    }
    f.close().unwrap();
}

#[test]
fn chunks_that_do_not_tile_the_concatenation_are_copied_or_refused() {
    // `generate` chunks one step at a time, which always tiles: these files
    // chunk 3 steps at a time.
    let dir = tmp();
    let write = |name: &str, lens: &[usize]| -> Vec<PathBuf> {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut t0 = 0;
        lens.iter()
            .enumerate()
            .map(|(i, &n)| {
                let p = d.join(format!("f{i}.nc"));
                tiled_file(&p, t0, n, 3);
                t0 += n;
                p
            })
            .collect()
    };
    // 6, 5, 6: the 5 cuts a chunk.
    let ragged = write("ragged", &[6, 5, 6]);
    // 6, 6, 5: only the last file ends on a partial chunk.
    let tiled = write("tiled", &[6, 6, 5]);

    let repo = dir.path().join("refused.icechunk");
    let r = convert(
        Some(2),
        &["--icechunk", "--virtual-fallback", "refuse"],
        &repo,
        &ragged,
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let lines = own_lines(&r.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("variable 'tas' cannot be referenced:") && lines[0].contains("f1.nc"),
        "{}",
        lines[0]
    );
    assert!(!repo.exists());

    let repo = dir.path().join("copied.icechunk");
    let r = convert(Some(2), &["--icechunk"], &repo, &ragged);
    assert!(r.ok(), "{}", r.stderr);
    let w: Vec<&str> = own_lines(&r.stderr)
        .into_iter()
        .filter(|l| l.contains("warning: variable"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("zarrforge: warning: variable 'tas' is copied, not referenced: ")
            && w[0].contains("f1.nc"),
        "{}",
        w[0]
    );
    assert_identical(&verify(Some(2), true, &ragged, &repo), "ragged, copied");

    // The tiling set is referenced: 6 chunks of 3 steps, the last one the
    // last file's partial chunk.
    for icechunk in [false, true] {
        let out = dir.path().join(if icechunk {
            "tiled.icechunk"
        } else {
            "tiled.json"
        });
        let extra: &[&str] = if icechunk {
            &["--icechunk", "--virtual-fallback", "refuse"]
        } else {
            &["--virtual-fallback", "refuse"]
        };
        let r = convert(Some(2), extra, &out, &tiled);
        assert!(r.ok(), "{}", r.stderr);
        assert!(!r.stderr.contains("warning"), "{}", r.stderr);
        assert_identical(&verify(Some(2), icechunk, &tiled, &out), "tiled");
        if !icechunk {
            let m = refs(&out);
            for (k, f) in [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)] {
                let key = format!("tas/{k}.0.0");
                let (url, _, _) = reference(&m[&key]).unwrap();
                assert_eq!(url, file_url(&tiled[f]), "{key}");
            }
            assert!(!m.contains_key("tas/6.0.0"));
        }
    }
}

/// A netCDF-3 classic file written by `ncgen` with records `t0..t0+n`: a
/// float and a short record variable (the short's 3 values, 6 bytes, are
/// padded to 8 in each record) and a fixed variable.
fn nc3_file(dir: &Path, name: &str, t0: usize, n: usize) -> PathBuf {
    let hours: Vec<usize> = (t0..t0 + n).collect();
    let tas: Vec<String> = hours
        .iter()
        .flat_map(|&h| {
            (0..15).map(move |j| format!("{}", 250.0 + h as f64 * 0.5 + f64::from(j) * 0.25))
        })
        .collect();
    let sh: Vec<String> = hours
        .iter()
        .flat_map(|&h| (0..3).map(move |j| format!("{}", h * 10 + j)))
        .collect();
    let orog: Vec<String> = (0..15).map(|k| format!("{}", f64::from(k) * 1.5)).collect();
    let cdl = format!(
        "netcdf {name} {{
dimensions:
  time = UNLIMITED ;
  lat = 3 ;
  lon = 5 ;
  nb = 3 ;
variables:
  double time(time) ;
    time:units = \"hours since 2000-01-01\" ;
  float lat(lat) ;
  float tas(time, lat, lon) ;
    tas:units = \"K\" ;
  short sh(time, nb) ;
  double orog(lat, lon) ;
data:
  time = {} ;
  lat = 10, 20, 30 ;
  tas = {} ;
  sh = {} ;
  orog = {} ;
}}
",
        hours
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        tas.join(", "),
        sh.join(", "),
        orog.join(", ")
    );
    let cdl_path = dir.join(format!("{name}.cdl"));
    let nc = dir.join(format!("{name}.nc"));
    std::fs::write(&cdl_path, cdl).unwrap();
    let st = std::process::Command::new("ncgen")
        .args(["-k", "nc3", "-b", "-o", s(&nc), s(&cdl_path)])
        .status()
        .expect("ncgen (netcdf-bin) is needed by this test");
    assert!(st.success());
    let k = std::process::Command::new("ncdump")
        .args(["-k", s(&nc)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&k.stdout).trim(), "classic");
    nc
}

#[test]
fn netcdf3_records_are_referenced_one_record_at_a_time() {
    let dir = tmp();
    let files = vec![
        nc3_file(dir.path(), "c0", 0, 4),
        nc3_file(dir.path(), "c1", 4, 4),
        nc3_file(dir.path(), "c2", 8, 3),
    ];
    for ranks in [None, Some(2)] {
        let repo = dir.path().join(format!("nc3-{ranks:?}.icechunk"));
        let r = convert(
            ranks,
            &["--icechunk", "--virtual-fallback", "refuse"],
            &repo,
            &files,
        );
        assert!(r.ok(), "{}", r.stderr);
        assert_identical(&verify(ranks, true, &files, &repo), "nc3 icechunk");
        let json = dir.path().join(format!("nc3-{ranks:?}.json"));
        let r = convert(ranks, &["--virtual-fallback", "refuse"], &json, &files);
        assert!(r.ok(), "{}", r.stderr);
        assert_identical(&verify(ranks, false, &files, &json), "nc3 kerchunk");

        let m = refs(&json);
        // A record holds tas (60 bytes), sh (6, padded to 8) and time (8).
        let record = 60 + 8 + 8;
        let mut h = 0;
        for (fi, f) in files.iter().enumerate() {
            let n = if fi == 2 { 3 } else { 4 };
            let (_, tas) = source_bytes(f, "tas");
            let (_, sh) = source_bytes(f, "sh");
            let mut prev: Option<(u64, u64)> = None;
            for k in 0..n {
                let (url, off, len) = reference(&m[&format!("tas/{h}.0.0")])
                    .unwrap_or_else(|| panic!("tas/{h}.0.0 is not a reference"));
                assert_eq!(url, file_url(f), "tas/{h}.0.0");
                assert_eq!(len, 60, "tas/{h}.0.0: one record's tas");
                // netCDF-3 stores big-endian.
                let stored: Vec<u8> = read_at(f, off, len)
                    .chunks_exact(4)
                    .flat_map(|c| f32::from_be_bytes(c.try_into().unwrap()).to_le_bytes())
                    .collect();
                assert!(stored == tas[k * 60..(k + 1) * 60], "tas/{h}.0.0 bytes");
                let (url, soff, slen) = reference(&m[&format!("sh/{h}.0")])
                    .unwrap_or_else(|| panic!("sh/{h}.0 is not a reference"));
                assert_eq!(url, file_url(f));
                assert_eq!(slen, 6, "sh/{h}.0: the values, not the padding");
                let stored: Vec<u8> = read_at(f, soff, slen)
                    .chunks_exact(2)
                    .flat_map(|c| i16::from_be_bytes(c.try_into().unwrap()).to_le_bytes())
                    .collect();
                assert!(stored == sh[k * 6..(k + 1) * 6], "sh/{h}.0 bytes");
                if let Some((p_tas, p_sh)) = prev {
                    assert_eq!(off - p_tas, record, "tas/{h}.0.0: one record further");
                    assert_eq!(soff - p_sh, record, "sh/{h}.0: one record further");
                }
                prev = Some((off, soff));
                h += 1;
            }
        }
        assert!(!m.contains_key(&format!("tas/{h}.0.0")));
        let meta: serde_json::Value =
            serde_json::from_str(m["tas/.zarray"].as_str().unwrap()).unwrap();
        assert_eq!(meta["chunks"], serde_json::json!([1, 3, 5]));
        assert_eq!(meta["dtype"], ">f4");
        // The fixed variable is one block (of the first file).
        let (url, _, len) = reference(&m["orog/0.0"]).expect("orog is referenced");
        assert_eq!((url, len), (file_url(&files[0]), 15 * 8));
    }
}

#[test]
fn a_prefix_rewrites_the_locations() {
    let dir = tmp();
    let made = generated(&dir.path().join("orig"), &[4, 4, 4]);
    let a = dir.path().join("A");
    std::fs::create_dir_all(&a).unwrap();
    let a = a.canonicalize().unwrap();
    let b = a.with_file_name("B");
    let in_a: Vec<PathBuf> = made
        .iter()
        .map(|f| {
            let p = a.join(f.file_name().unwrap());
            std::fs::copy(f, &p).unwrap();
            p
        })
        .collect();
    let in_b: Vec<PathBuf> = in_a
        .iter()
        .map(|f| b.join(f.file_name().unwrap()))
        .collect();
    let rule = format!("{}={}", a.display(), b.display());
    let json = dir.path().join("refs.json");
    let repo = dir.path().join("repo.icechunk");
    let r = convert(Some(2), &["--virtual-prefix", &rule], &json, &in_a);
    assert!(r.ok(), "{}", r.stderr);
    let r = convert(
        Some(2),
        &["--icechunk", "--virtual-prefix", &rule],
        &repo,
        &in_a,
    );
    assert!(r.ok(), "{}", r.stderr);

    let m = refs(&json);
    let urls: Vec<String> = m
        .values()
        .filter_map(reference)
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(urls.len(), 3 * STEPS * 3, "every data chunk is a reference");
    let b_url = format!("file://{}/", b.display());
    assert!(
        urls.iter().all(|u| u.starts_with(&b_url)),
        "every location is under B: {:?}",
        urls.iter().find(|u| !u.starts_with(&b_url))
    );
    assert_eq!(containers(&repo), vec![b_url.clone()], "the container is B");

    // The files are still in A: the references (to B) cannot be read.
    let r = verify(None, false, &in_a, &json);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let r = verify(None, true, &in_a, &repo);
    assert_ne!(r.code, Some(0), "{}{}", r.stdout, r.stderr);

    std::fs::rename(&a, &b).unwrap();
    assert_identical(&verify(Some(2), false, &in_b, &json), "kerchunk in B");
    assert_identical(&verify(Some(2), true, &in_b, &repo), "icechunk in B");
}

#[test]
fn appends_add_files_and_a_different_one_is_refused() {
    let dir = tmp();
    let files = generated(&dir.path().join("in"), &[4, 4, 4, 4]);
    let other = dir.path().join("in").join("other.nc");
    generate(&other, STEPS, 2.0, 1);
    for icechunk in [false, true] {
        let (out, extra): (PathBuf, &[&str]) = if icechunk {
            (dir.path().join("a.icechunk"), &["--icechunk"])
        } else {
            (dir.path().join("a.json"), &[])
        };
        let r = convert(None, extra, &out, &files[..2]);
        assert!(r.ok(), "{}", r.stderr);
        assert_identical(&verify(None, icechunk, &files[..2], &out), "first two");
        let mut args = extra.to_vec();
        args.push("--append");
        let r = convert(Some(2), &args, &out, &files[2..]);
        assert!(r.ok(), "append: {}", r.stderr);
        assert_identical(&verify(Some(2), icechunk, &files, &out), "after the append");
        let r = verify(None, icechunk, &files[..2], &out);
        assert_eq!(r.code, Some(1), "the output grew: {}{}", r.stdout, r.stderr);
        if !icechunk {
            let m = refs(&out);
            let (url, _, _) = reference(&m[&format!("t2m/{}.0.0", 4 * STEPS - 1)]).unwrap();
            assert_eq!(
                url,
                file_url(&files[3]),
                "the last step is in the last file"
            );
        }

        // A file deflated at another level cannot be appended by reference.
        let state = |p: &Path| -> Vec<(PathBuf, Vec<u8>)> {
            if p.is_dir() {
                snapshot(p)
            } else {
                vec![(PathBuf::new(), std::fs::read(p).unwrap())]
            }
        };
        let before = state(&out);
        let r = convert(Some(2), &args, &out, std::slice::from_ref(&other));
        assert_eq!(r.code, Some(3), "{}", r.stderr);
        let lines = own_lines(&r.stderr);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("variable 't2m'") && lines[0].contains("zlib(1)"),
            "{}",
            lines[0]
        );
        if icechunk {
            let snaps = |files: Vec<(PathBuf, Vec<u8>)>| -> Vec<PathBuf> {
                files
                    .into_iter()
                    .map(|(p, _)| p)
                    .filter(|p| p.starts_with("snapshots"))
                    .collect()
            };
            assert_eq!(snaps(state(&out)), snaps(before), "no new snapshot");
        } else {
            assert!(state(&out) == before, "refs.json unchanged");
        }
        assert_identical(
            &verify(Some(2), icechunk, &files, &out),
            "after the refusal",
        );
    }
}

#[test]
fn virtual_without_a_reference_output_is_a_usage_error() {
    let dir = tmp();
    let files = generated(&dir.path().join("in"), &[4]);
    for (out, needle) in [("out.zarr", "--virtual"), ("refs.parq", "Parquet")] {
        let path = dir.path().join(out);
        let r = convert(None, &[], &path, &files);
        assert_eq!(r.code, Some(2), "{out}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{out}: one line: {lines:?}");
        assert!(
            lines[0].starts_with("zarrforge: error:") && lines[0].contains(needle),
            "{out}: {}",
            lines[0]
        );
        assert!(!path.exists(), "{out} was created");
    }
}
