//! Bad inputs: one clear line naming the file (and variable), a non-zero
//! exit on every rank, no hang, and no committed or damaged store.

use std::path::Path;

use crate::common::*;

/// Runs a conversion that must fail with 2 ranks; returns the error line.
fn must_fail(args: &[&str], expect: &[&str]) -> String {
    let run = zarrforge(Some(2), args, 2 * MINUTE);
    assert!(!run.ok(), "zarrforge {args:?} succeeded");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error line, got: {}",
        run.stderr
    );
    for e in expect {
        assert!(
            errors[0].contains(e),
            "error line lacks {e:?}: {}",
            errors[0]
        );
    }
    errors[0].to_string()
}

fn convert_args<'a>(out: &'a Path, input: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["convert", "--quiet", "-o", out.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.push(input.to_str().unwrap());
    a
}

fn assert_uncommitted(out: &Path) {
    assert!(!out.join("zarr.json").exists(), "store was committed");
    assert!(!out.join(".zgroup").exists(), "store was committed");
}

#[test]
fn missing_input() {
    let t = tmp();
    let input = t.path().join("nope.nc");
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &input, &[]),
        &["nope.nc", "no such file"],
    );
    assert!(!out.exists());
}

#[test]
fn not_netcdf_and_directory() {
    let t = tmp();
    let input = t.path().join("notes.txt");
    std::fs::write(&input, "hello, not a netCDF file\n").unwrap();
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &input, &[]),
        &["notes.txt", "not a netCDF file"],
    );
    must_fail(&convert_args(&out, t.path(), &[]), &["not a netCDF file"]);
    assert!(!out.exists());
}

#[test]
fn hdf5_file_that_is_truncated() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let bytes = std::fs::read(&src).unwrap();
    let cut = t.path().join("cut.nc");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = t.path().join("o.zarr");
    must_fail(&convert_args(&out, &cut, &[]), &["cut.nc"]);
    assert_uncommitted(&out);
}

#[test]
fn unsupported_type_and_skip() {
    let t = tmp();
    let cdl = t.path().join("c.cdl");
    let src = t.path().join("compound.nc");
    std::fs::write(
        &cdl,
        "netcdf compound {\ntypes:\n  compound pair { int a; float b; };\ndimensions:\n  x = 2;\nvariables:\n  pair obs(x);\n  float good(x);\ndata:\n  obs = {1, 2.5}, {3, 4.5};\n  good = 1, 2;\n}\n",
    )
    .unwrap();
    let st = std::process::Command::new("ncgen")
        .args(["-4", "-o", src.to_str().unwrap(), cdl.to_str().unwrap()])
        .status()
        .expect("ncgen (netcdf-bin) is needed by this test");
    assert!(st.success());
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &src, &[]),
        &["compound.nc", "'obs'", "compound"],
    );
    assert!(!out.exists());
    let run = zarrforge(
        Some(2),
        &convert_args(&out, &src, &["--skip-unsupported"]),
        2 * MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stderr.contains("skipped unsupported variable obs"),
        "{}",
        run.stderr
    );
    assert!(out.join("good/zarr.json").is_file());
    assert!(!out.join("obs").exists());
}

#[test]
fn bad_chunk_and_codec_specs() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &src, &["--chunks", "time=0"]),
        &["--chunks", "time"],
    );
    must_fail(
        &convert_args(&out, &src, &["--chunks", "time=-4"]),
        &["--chunks"],
    );
    must_fail(
        &convert_args(&out, &src, &["--chunks", "depth=4"]),
        &["depth", "rich.nc"],
    );
    must_fail(
        &convert_args(&out, &src, &["--codec", "lz5"]),
        &["--codec", "lz5"],
    );
    must_fail(
        &convert_args(&out, &src, &["--codec", "zstd:99"]),
        &["zstd:99"],
    );
    must_fail(
        &convert_args(&out, &src, &["--shards", "time=4", "--zarr-format", "2"]),
        &["--shards"],
    );
    assert!(!out.exists());
}

#[test]
fn existing_store_is_refused_and_left_untouched() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let out = t.path().join("o.zarr");
    let run = zarrforge(Some(2), &convert_args(&out, &src, &[]), 2 * MINUTE);
    assert!(run.ok(), "{}", run.stderr);
    let before = snapshot(&out);
    must_fail(
        &convert_args(&out, &src, &["--chunks", "time=2"]),
        &["o.zarr", "already exists"],
    );
    assert!(snapshot(&out) == before, "refused run changed the store");
    // --overwrite replaces a zarrforge store...
    let run = zarrforge(
        Some(2),
        &convert_args(&out, &src, &["--overwrite", "--chunks", "time=2"]),
        2 * MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(
        json(&out.join("temp/zarr.json"))["chunk_grid"]["configuration"]["chunk_shape"][0],
        2
    );
    // ...but never a directory zarrforge did not write.
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("thesis.tex"), "keep me").unwrap();
    must_fail(
        &convert_args(&home, &src, &["--overwrite"]),
        &["home", "not a Zarr store written by zarrforge"],
    );
    assert_eq!(
        std::fs::read_to_string(home.join("thesis.tex")).unwrap(),
        "keep me"
    );
}

#[test]
fn output_that_cannot_be_created() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let file = t.path().join("plainfile");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("o.zarr");
    must_fail(
        &convert_args(&out, &src, &[]),
        &["plainfile/o.zarr", "cannot create output"],
    );
    // Output equal to a directory that contains the input.
    must_fail(
        &convert_args(t.path(), &src, &["--overwrite"]),
        &["would overwrite input"],
    );
    assert!(src.exists());
}

#[test]
fn unreadable_input() {
    // Root reads any file whatever its mode: nothing to test there.
    if unsafe { libc::geteuid() } == 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let t = tmp();
    let src = t.path().join("secret.nc");
    rich_fixture(&src);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &src, &[]),
        &["secret.nc", "cannot open"],
    );
}
