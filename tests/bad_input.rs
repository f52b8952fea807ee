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
    // Root reads any file whatever its mode: run as an unprivileged user.
    let t = tmp();
    open_up(t.path(), 0o777);
    let src = t.path().join("secret.nc");
    rich_fixture(&src);
    open_up(&src, 0o000);
    let out = t.path().join("o.zarr");
    let r = run_unprivileged(&[
        "convert",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("secret.nc") && line.contains("cannot open"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

/// `zarrforge ARGS` as an unprivileged user when the tests run as root
/// (permission bits do not stop root), as this user otherwise.
fn run_unprivileged(args: &[&str]) -> Run {
    let mut all: Vec<&str> = Vec::new();
    if unsafe { libc::geteuid() } == 0 {
        all.extend([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
        ]);
    } else {
        all.push(BIN);
    }
    all.extend_from_slice(args);
    let out = std::process::Command::new(all[0])
        .args(&all[1..])
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .env("TMPDIR", "/tmp")
        .output()
        .expect("run zarrforge");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn open_up(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_output_directory() {
    let t = tmp();
    open_up(t.path(), 0o755);
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    open_up(&src, 0o644);
    let ro = t.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    open_up(&ro, 0o555);
    let out = ro.join("o.zarr");
    let r = run_unprivileged(&[
        "convert",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("ro/o.zarr") && line.contains("Permission denied"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

#[test]
fn hdf5_file_that_is_not_netcdf() {
    let t = tmp();
    let path = t.path().join("plain.h5");
    {
        let f = hdf5::File::create(&path).unwrap();
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        f.new_dataset_builder()
            .with_data(&data)
            .create("values")
            .unwrap();
    }
    let out = t.path().join("o.zarr");
    must_fail(
        &convert_args(&out, &path, &[]),
        &["plain.h5", "not netCDF-4", "'values'", "--phony-dims"],
    );
    assert!(!out.exists());
    // With --phony-dims: the dimensions netCDF-C names, every value kept.
    let run = zarrforge(
        Some(2),
        &convert_args(&out, &path, &["--phony-dims"]),
        2 * MINUTE,
    );
    assert!(run.ok(), "{}", run.stderr);
    let doc = json(&out.join("values/zarr.json"));
    assert_eq!(doc["dimension_names"], serde_json::json!(["phony_dim_0"]));
    let (shape, bytes) = store_bytes(&out, "values");
    assert_eq!(shape, vec![12]);
    let want: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
    assert_eq!(bytes, want);
}

/// Every dimension of length 0 (unlimited, no records): valid netCDF, an
/// empty store that xarray reads as the source.
#[test]
fn dimensions_of_length_zero_everywhere() {
    let t = tmp();
    let src = t.path().join("empty.nc");
    {
        let mut f = netcdf::create(&src).unwrap();
        f.add_unlimited_dimension("time").unwrap();
        f.add_unlimited_dimension("obs").unwrap();
        let mut v = f.add_variable::<f32>("x", &["time", "obs"]).unwrap();
        v.put_attribute("units", "K").unwrap();
        f.add_variable::<f64>("time", &["time"]).unwrap();
        f.close().unwrap();
    }
    let out = t.path().join("o.zarr");
    let r = zarrforge(Some(2), &convert_args(&out, &src, &[]), MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(store_bytes(&out, "x").0, vec![0, 0]);
    assert_eq!(store_bytes(&out, "time").0, vec![0]);
}

/// One element per source chunk (12,000 chunks): slow to read, but correct.
#[test]
fn one_element_chunks() {
    let t = tmp();
    let src = t.path().join("tiny_chunks.nc");
    {
        let mut f = netcdf::create(&src).unwrap();
        f.add_dimension("a", 10).unwrap();
        f.add_dimension("b", 30).unwrap();
        f.add_dimension("c", 40).unwrap();
        let mut v = f.add_variable::<f64>("v", &["a", "b", "c"]).unwrap();
        v.set_chunking(&[1, 1, 1]).unwrap();
        v.set_compression(1, false).unwrap();
        let d: Vec<f64> = (0..12_000).map(|i| val(i, 7)).collect();
        v.put_values(&d, netcdf::Extents::from([0..10, 0..30, 0..40]))
            .unwrap();
        f.close().unwrap();
    }
    let out = t.path().join("o.zarr");
    let r = zarrforge(
        Some(3),
        &convert_args(&out, &src, &["--verify"]),
        2 * MINUTE,
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("identical"), "{}", r.stdout);
    assert_eq!(store_bytes(&out, "v").1, source_bytes(&src, "v").1);
}

#[test]
fn overwrite_never_follows_a_symlink() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let target = t.path().join("precious");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("data.txt"), "keep").unwrap();
    let link = t.path().join("link.zarr");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    must_fail(
        &convert_args(&link, &src, &["--overwrite"]),
        &["link.zarr", "refusing to overwrite"],
    );
    assert_eq!(
        std::fs::read_to_string(target.join("data.txt")).unwrap(),
        "keep"
    );
    // A store written by zarrforge behind the link is not deleted either.
    let real = t.path().join("real.zarr");
    let r = zarrforge(Some(2), &convert_args(&real, &src, &[]), MINUTE);
    assert!(r.ok(), "{}", r.stderr);
    let link2 = t.path().join("link2.zarr");
    std::os::unix::fs::symlink(&real, &link2).unwrap();
    must_fail(
        &convert_args(&link2, &src, &["--overwrite"]),
        &["link2.zarr", "refusing to overwrite"],
    );
    assert!(real.join("zarr.json").exists());
}

#[test]
fn memory_budget_too_small_or_unreadable() {
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let out = t.path().join("o.zarr");
    // 64 MiB is the baseline alone: no unit fits.
    let line = must_fail(
        &convert_args(&out, &src, &["--max-memory", "64M"]),
        &["--max-memory 64 MiB is too small", "variable '"],
    );
    assert!(line.contains("smaller --chunks"), "{line}");
    must_fail(
        &convert_args(&out, &src, &["--max-memory", "lots"]),
        &["invalid --max-memory value 'lots'"],
    );
    assert!(!out.exists(), "a refused budget created the store");
}

#[test]
fn tasks_launched_as_singletons_are_refused() {
    // srun with an MPI plugin this MPI does not speak starts N singletons:
    // each would convert alone into the same store.
    let t = tmp();
    let src = t.path().join("rich.nc");
    rich_fixture(&src);
    let out = t.path().join("o.zarr");
    let run = std::process::Command::new(BIN)
        .args(convert_args(&out, &src, &[]))
        .env("SLURM_STEP_NUM_TASKS", "2")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(70));
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("MPI sees a single rank") && err.contains("srun --mpi=pmix"),
        "{err}"
    );
    assert!(!out.exists());
}
