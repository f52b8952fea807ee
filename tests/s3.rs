//! Stores on S3-compatible object storage, against a real server (s3s-fs,
//! started on 127.0.0.1 by each test with its data under a temp dir):
//! the same bytes as a store in a directory on 1, 2 and 3 ranks; append,
//! overwrite and verify on S3; one clear error on every rank for bad
//! credentials, a missing bucket or an unreachable endpoint, with nothing
//! written; the endpoint lost in the middle of a conversion, then
//! `--resume` against the restarted server; a storm of 503 `SlowDown` answers survived by
//! the retries; the lock as an object.

// A test reads top to bottom as one scenario.
#![allow(clippy::too_many_lines)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zarrforge::store::storage::s3::{S3Storage, Settings};
use zarrforge::store::storage::url::S3Url;
use zarrforge::store::storage::Storage;

use crate::common::*;
use crate::multifile::{assert_same_files, comparable, series, Part};

const KEY: &str = "zfkey";
const SECRET: &str = "zfsecret";
const BUCKET: &str = "zf-bucket";

/// The s3s-fs binary: `ZF_S3S_FS`, `~/.cargo/bin/s3s-fs`, or on PATH.
fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("ZF_S3S_FS") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo = home.join(".cargo/bin/s3s-fs");
    if cargo.is_file() {
        return cargo;
    }
    let on_path = std::env::var_os("PATH").map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.flatten().unwrap_or_else(|| {
        panic!("s3s-fs not found: run scripts/install-deps --s3 (or set ZF_S3S_FS)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real S3 server on 127.0.0.1 with a bucket, stopped on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let data = dir.join("s3-data");
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let mut s = Self {
            child: None,
            port: free_port(),
            data,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        wait_listening(self.port);
    }

    /// SIGKILL: the server vanishes mid-request.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("ZARRFORGE_S3_RETRY_SECONDS".into(), "20".into()),
        ]
    }

    fn client(&self, prefix: &str) -> S3Storage {
        client_at(&self.endpoint(), prefix)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client_at(endpoint: &str, prefix: &str) -> S3Storage {
    let settings = Settings {
        key_id: KEY.into(),
        secret: SECRET.into(),
        token: None,
        region: "us-east-1".into(),
        endpoint: Some(endpoint.into()),
        allow_http: true,
        virtual_hosted: false,
        retry_timeout: Duration::from_secs(10),
    };
    S3Storage::with_settings(
        S3Url {
            bucket: BUCKET.into(),
            prefix: prefix.into(),
        },
        &settings,
    )
    .unwrap()
}

fn run(
    server_env: &[(String, String)],
    ranks: Option<usize>,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Run {
    let mut env: Vec<(&str, &str)> = server_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend_from_slice(extra_env);
    zarrforge_env(ranks, args, 2 * MINUTE, &env)
}

/// Downloads every object under `prefix` into `dir` (through the S3 API).
fn download(server: &Server, prefix: &str, dir: &Path) -> PathBuf {
    let c = server.client(prefix);
    let out = dir.join(prefix.replace('/', "_"));
    let _ = std::fs::remove_dir_all(&out);
    for k in c.list("").unwrap() {
        let p = out.join(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, c.get(&k).unwrap().unwrap()).unwrap();
    }
    out
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    series(dir, "m", &[3, 2, 4, 3, 2], |_, p: &mut Part| {
        p.lat = 5;
        p.vars = vec!["t2m", "p", "u10"];
    })
}

fn convert_args<'a>(out: &'a str, files: &'a [PathBuf], extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["convert", "--quiet", "--history", "-o", out];
    a.extend_from_slice(extra);
    a.extend(files.iter().map(|p| s(p)));
    a
}

#[test]
fn a_store_on_s3_has_the_bytes_of_a_store_in_a_directory_on_1_2_3_ranks() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let server = Server::start(dir.path());
    let env = server.env();
    for (label, layout) in [
        ("chunks", vec!["--chunks", "time=4,lat=2,lon=3"]),
        (
            "shards",
            vec![
                "--chunks",
                "time=2,lat=2,lon=2",
                "--shards",
                "time=4,lat=4,lon=4",
            ],
        ),
        ("v2", vec!["--chunks", "time=5", "--zarr-format", "2"]),
        (
            "exchange",
            vec!["--chunks", "time=14,lat=1,lon=2", "--exchange", "always"],
        ),
    ] {
        let local = dir.path().join(format!("{label}.zarr"));
        let r = zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE);
        assert!(r.ok(), "{label}: {}", r.stderr);
        let want = comparable(&local);
        for ranks in [None, Some(2), Some(3)] {
            let prefix = format!("runs/{label}-{ranks:?}.zarr");
            let url = format!("s3://{BUCKET}/{prefix}");
            let r = run(&env, ranks, &convert_args(&url, &files, &layout), &[]);
            assert!(r.ok(), "{label} {ranks:?}: {}", r.stderr);
            let got = download(&server, &prefix, dir.path());
            assert_same_files(&comparable(&got), &want, &format!("{label} {ranks:?}"));
            // Committed: marker and state, no journal, no lock.
            let keys = server.client(&prefix).list(".zarrforge").unwrap();
            assert_eq!(
                keys,
                [".zarrforge/dataset.bin", ".zarrforge/store.json"],
                "{label} {ranks:?}"
            );
            if ranks == Some(2) {
                let mut args = vec!["verify"];
                args.extend(files.iter().map(|p| s(p)));
                args.push(&url);
                let v = run(&env, Some(2), &args, &[]);
                let said = format!("{}{}", v.stdout, v.stderr);
                assert!(v.ok() && said.contains("identical"), "{label}: {said}");
            }
        }
    }
    // Objects above the multipart threshold go up in parts.
    let prefix = "runs/multipart.zarr";
    let url = format!("s3://{BUCKET}/{prefix}");
    let layout = ["--chunks", "time=14,lat=5,lon=8"];
    let r = run(
        &env,
        Some(2),
        &convert_args(&url, &files, &layout),
        &[("ZARRFORGE_S3_MULTIPART_BYTES", "256")],
    );
    assert!(r.ok(), "{}", r.stderr);
    let local = dir.path().join("multipart.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE).ok());
    let got = download(&server, prefix, dir.path());
    assert_same_files(&comparable(&got), &comparable(&local), "multipart");
}

#[test]
fn append_overwrite_and_resume_on_s3_equal_one_conversion() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let server = Server::start(dir.path());
    let env = server.env();
    let layout = ["--chunks", "time=4,lat=2,lon=3"];
    let local = dir.path().join("all.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE).ok());
    let want = comparable(&local);
    let prefix = "runs/appended.zarr";
    let url = format!("s3://{BUCKET}/{prefix}");
    let r = run(
        &env,
        Some(2),
        &convert_args(&url, &files[..2], &layout),
        &[],
    );
    assert!(r.ok(), "{}", r.stderr);
    let r = run(
        &env,
        Some(3),
        &convert_args(&url, &files[2..], &["--append"]),
        &[],
    );
    assert!(r.ok(), "{}", r.stderr);
    let got = download(&server, prefix, dir.path());
    assert_same_files(&comparable(&got), &want, "appended");
    // A second conversion to the committed store is refused; --overwrite
    // replaces it.
    let r = run(&env, None, &convert_args(&url, &files[..1], &layout), &[]);
    assert!(
        !r.ok() && r.stderr.contains("already exists"),
        "{}",
        r.stderr
    );
    let r = run(
        &env,
        Some(2),
        &convert_args(&url, &files[..1], &["--overwrite"]),
        &[],
    );
    assert!(r.ok(), "{}", r.stderr);
    let got = download(&server, prefix, dir.path());
    let one = dir.path().join("one.zarr");
    assert!(zarrforge(None, &convert_args(s(&one), &files[..1], &[]), MINUTE).ok());
    assert_same_files(&comparable(&got), &comparable(&one), "overwritten");
    // --overwrite refuses a prefix that is not a zarrforge store.
    let foreign = server.client("runs/foreign.zarr");
    foreign.put("notes.txt", b"keep").unwrap();
    let r = run(
        &env,
        None,
        &convert_args(
            &format!("s3://{BUCKET}/runs/foreign.zarr"),
            &files,
            &["--overwrite"],
        ),
        &[],
    );
    assert!(
        !r.ok() && r.stderr.contains("not a Zarr store written by zarrforge"),
        "{}",
        r.stderr
    );
    assert_eq!(foreign.list("").unwrap(), ["notes.txt"]);
    // A live lock is respected: this test process is the holder.
    let locked = server.client("runs/appended.zarr");
    let holder = serde_json::json!({
        "host": hostname(),
        "pid": std::process::id(),
        "job": null,
        "since": "now",
    });
    locked
        .put(".zarrforge/lock", holder.to_string().as_bytes())
        .unwrap();
    let r = run(
        &env,
        Some(2),
        &convert_args(&url, &files[..1], &["--overwrite"]),
        &[],
    );
    assert!(!r.ok() && r.stderr.contains("locked"), "{}", r.stderr);
    assert!(
        locked.exists("zarr.json").unwrap(),
        "the locked store was changed"
    );
    locked.delete(&[".zarrforge/lock".into()]).unwrap();
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[test]
fn bad_credentials_a_missing_bucket_or_no_server_fail_on_every_rank_before_any_write() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let server = Server::start(dir.path());
    let good = server.env();
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        good.iter()
            .map(|(a, b)| {
                if a == k {
                    (a.clone(), v.to_string())
                } else {
                    (a.clone(), b.clone())
                }
            })
            .collect()
    };
    let dead = format!("http://127.0.0.1:{}", free_port());
    for (label, env, url, want) in [
        (
            "wrong secret",
            with("AWS_SECRET_ACCESS_KEY", "nope"),
            format!("s3://{BUCKET}/runs/x.zarr"),
            "credentials were refused",
        ),
        (
            "no bucket",
            good.clone(),
            "s3://no-such-bucket/runs/x.zarr".to_string(),
            "bucket does not exist",
        ),
        (
            "no server",
            with("AWS_ENDPOINT_URL", &dead),
            format!("s3://{BUCKET}/runs/x.zarr"),
            "cannot be reached",
        ),
        (
            "no credentials",
            with("AWS_ACCESS_KEY_ID", ""),
            format!("s3://{BUCKET}/runs/x.zarr"),
            "no S3 credentials",
        ),
    ] {
        let r = run(
            &env,
            Some(2),
            &convert_args(&url, &files, &[]),
            &[("ZARRFORGE_S3_RETRY_SECONDS", "1"), ("HOME", s(dir.path()))],
        );
        assert_eq!(r.code, Some(4), "{label}: {}", r.stderr);
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("zarrforge: error"))
            .collect();
        assert_eq!(errors.len(), 1, "{label}: one error line: {}", r.stderr);
        assert!(
            errors[0].contains(&url) && errors[0].contains(want),
            "{label}: {}",
            r.stderr
        );
        assert!(
            errors[0].contains("[rank 1]") || errors[0].contains("[ranks 0,1]"),
            "{label}: every rank: {}",
            r.stderr
        );
    }
    assert!(
        server.client("").list("").unwrap().is_empty(),
        "something was written"
    );
}

/// `n` generated model-like files (24 steps of 91 x 180) under `dir`.
fn generated(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("g{i}.nc"));
            let r = zarrforge(
                None,
                &[
                    "generate",
                    "--time",
                    "24",
                    "--lat",
                    "91",
                    "--lon",
                    "180",
                    "--t0",
                    &i.to_string(),
                    s(&p),
                ],
                MINUTE,
            );
            assert!(r.ok(), "{}", r.stderr);
            p
        })
        .collect()
}

/// `tests/s3/slowdown_proxy.py` on a free port in front of `server`,
/// answering every `every`-th request with 503 (0: none) and with an
/// optional gate (`die:TEXT` or `hold:TEXT`, see the script). Returns the
/// proxy and the environment that points the ranks at it.
fn proxy(
    server: &Server,
    every: u32,
    count: &Path,
    gate: Option<&str>,
) -> (Child, Vec<(String, String)>) {
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/slowdown_proxy.py");
    let child = Command::new("python3")
        .arg(&script)
        .args([
            &port.to_string(),
            &server.port.to_string(),
            &every.to_string(),
            s(count),
        ])
        .args(gate)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the proxy");
    wait_listening(port);
    let mut env = server.env();
    for (k, v) in &mut env {
        if k == "AWS_ENDPOINT_URL" {
            *v = format!("http://127.0.0.1:{port}");
        }
    }
    (child, env)
}

#[test]
fn the_endpoint_lost_mid_conversion_fails_every_rank_and_resume_finishes_the_store() {
    let dir = tmp();
    let files = generated(dir.path(), 6);
    let mut server = Server::start(dir.path());
    let env = server.env();
    let prefix = "runs/killed.zarr";
    let url = format!("s3://{BUCKET}/{prefix}");
    // 3459 units, more than two journal batches on each of the 2 ranks: the
    // endpoint vanishes (the proxy exits) right after the first batch lands,
    // while every rank still has units to write, whatever this machine's
    // speed.
    let layout = ["--chunks", "time=2,lat=23,lon=45"];
    let (mut gate, via_gate) = proxy(
        &server,
        0,
        &dir.path().join("refused"),
        Some("die:/.zarrforge/journal/units-"),
    );
    let args = convert_args(&url, &files, &layout);
    let mut child = Command::new("mpirun")
        .args(["-np", "2", BIN])
        .args(&args)
        .envs(via_gate.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ZARRFORGE_S3_RETRY_SECONDS", "3")
        .env("OMPI_MCA_orte_tmpdir_base", ompi_session_base())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = crate::reliability::wait_for(&mut child, 2 * MINUTE);
    let _ = gate.kill();
    let gone = gate.wait().unwrap();
    assert!(gone.success(), "the endpoint never vanished: {gone}; {err}");
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(&url) && err.contains("--resume"), "{err}");
    // The server itself restarts between the runs.
    server.kill();
    server.run();
    assert!(
        !server.client(prefix).exists("zarr.json").unwrap(),
        "committed"
    );
    let c = server.client(prefix);
    assert!(
        c.list(".zarrforge/journal")
            .unwrap()
            .iter()
            .any(|k| k.contains("/units-")),
        "no journal batch on the server"
    );
    let r = run(
        &env,
        Some(3),
        &convert_args(&url, &files, &[layout[0], layout[1], "--resume"]),
        &[],
    );
    assert!(r.ok(), "{}", r.stderr);
    let local = dir.path().join("clean.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), 2 * MINUTE).ok());
    let got = download(&server, prefix, dir.path());
    assert_same_files(&comparable(&got), &comparable(&local), "resumed");
    let i = run(&env, None, &["inspect", &url], &[]);
    assert!(
        i.ok() && i.stdout.contains(": committed") && i.stdout.contains("t2m: "),
        "{}",
        i.stdout
    );
}

#[test]
fn a_storm_of_503_slowdown_is_survived_by_the_retries() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let server = Server::start(dir.path());
    let count = dir.path().join("refused");
    let (mut proxy, env) = proxy(&server, 3, &count, None);
    let prefix = "runs/throttled.zarr";
    let url = format!("s3://{BUCKET}/{prefix}");
    let layout = ["--chunks", "time=2,lat=2,lon=2"];
    let r = run(&env, Some(2), &convert_args(&url, &files, &layout), &[]);
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(r.ok(), "{}", r.stderr);
    let refused: u64 = std::fs::read_to_string(&count).unwrap().parse().unwrap();
    assert!(refused >= 20, "only {refused} requests throttled");
    let local = dir.path().join("clean.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE).ok());
    let got = download(&server, prefix, dir.path());
    assert_same_files(&comparable(&got), &comparable(&local), "throttled");
}

/// moto's S3 server (`ZF_MOTO_SERVER`, or the venv `zf_moto` makes).
fn moto_server() -> PathBuf {
    std::env::var_os("ZF_MOTO_SERVER").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/moto_server"),
        PathBuf::from,
    )
}

/// Creates a bucket on a server that takes unsigned requests (moto).
fn make_bucket(port: u16, bucket: &str) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket: {answer}"
    );
}

/// moto's S3 server on a free port with the test bucket; its endpoint.
/// s3s-fs's conditional PUTs (`If-None-Match: *`, `If-Match`) are not
/// atomic under a race; moto's are.
fn start_moto() -> (Child, String) {
    let moto = moto_server();
    assert!(
        moto.is_file(),
        "{} not found: run `source scripts/env.sh && zf_moto` (scripts/test does)",
        moto.display()
    );
    let port = free_port();
    let server = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    wait_listening(port);
    make_bucket(port, BUCKET);
    (server, format!("http://127.0.0.1:{port}"))
}

/// `zarrforge ARGS` as one rank against the S3 server at `endpoint`, in
/// the background.
fn spawn_against(endpoint: &str, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every object under `prefix` at `endpoint`, downloaded into `out`.
fn download_from(endpoint: &str, prefix: &str, out: &Path) {
    let c = client_at(endpoint, prefix);
    for k in c.list("").unwrap() {
        let p = out.join(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, c.get(&k).unwrap().unwrap()).unwrap();
    }
}

/// Downloads the store under `prefix` into `out` and checks it has the
/// bytes of the store `want` in a directory and no lock left.
fn assert_downloaded_as(endpoint: &str, prefix: &str, out: &Path, want: &Path, what: &str) {
    download_from(endpoint, prefix, out);
    assert_same_files(&comparable(out), &comparable(want), what);
    assert!(!out.join(".zarrforge/lock").exists(), "{what}: lock left");
}

#[test]
fn racing_runs_on_one_new_s3_store_leave_one_writer_and_the_clean_bytes() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let (mut server, endpoint) = start_moto();
    let layout = ["--chunks", "time=4,lat=2,lon=3"];
    let local = dir.path().join("clean.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE).ok());
    for round in 0..3 {
        let prefix = format!("race/r{round}.zarr");
        let url = format!("s3://{BUCKET}/{prefix}");
        let args = convert_args(&url, &files, &layout);
        let children: Vec<Child> = (0..4).map(|_| spawn_against(&endpoint, &args)).collect();
        let mut won = 0;
        for mut c in children {
            let (code, err) = crate::reliability::wait_for(&mut c, 2 * MINUTE);
            if code == Some(0) {
                won += 1;
            } else {
                // Refused by the lock (the winner's store being written)
                // or by its committed store, never half-way, and never
                // told to resume a store that a live run is writing.
                assert!(
                    err.contains("is locked by another zarrforge run (host")
                        || err.contains("already exists"),
                    "round {round}: a loser failed otherwise: {err}"
                );
            }
        }
        assert_eq!(won, 1, "round {round}: {won} runs wrote the store");
        assert_downloaded_as(
            &endpoint,
            &prefix,
            &dir.path().join(format!("r{round}")),
            &local,
            &format!("round {round}"),
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// A stale lock on S3 (its holder's process is gone) found by four
/// appends started at once: it is replaced with a conditional PUT
/// (`If-Match` on its `ETag`), so exactly one run takes it over at a time;
/// the others wait for that run and take the lock once it is released
/// (their append then finds nothing new), or refuse with exit 6 naming the
/// holder. Never a storage error, the clean bytes of one append, no lock
/// left.
#[test]
fn a_stale_lock_on_s3_is_taken_over_by_one_run_at_a_time() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let (mut server, endpoint) = start_moto();
    let layout = ["--chunks", "time=4,lat=2,lon=3"];
    let local = dir.path().join("all.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), MINUTE).ok());
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let stale = format!(
        r#"{{"host": "{}", "pid": 4194300, "job": null, "since": "2026-01-01T00:00:00Z", "token": "stale-1"}}"#,
        hostname()
    );
    for round in 0..3 {
        let prefix = format!("takeover/r{round}.zarr");
        let url = format!("s3://{BUCKET}/{prefix}");
        let r = zarrforge_env(
            None,
            &convert_args(&url, &files[..2], &layout),
            MINUTE,
            &env,
        );
        assert!(r.ok(), "{}", r.stderr);
        client_at(&endpoint, &prefix)
            .put(".zarrforge/lock", stale.as_bytes())
            .unwrap();
        let args = convert_args(&url, &files[2..], &["--append"]);
        let children: Vec<Child> = (0..4).map(|_| spawn_against(&endpoint, &args)).collect();
        let mut appended = 0;
        for mut c in children {
            let (code, err) = crate::reliability::wait_for(&mut c, 2 * MINUTE);
            match code {
                Some(0) => appended += 1,
                Some(6) => assert!(
                    err.contains("is locked by another zarrforge run (host"),
                    "round {round}: {err}"
                ),
                other => panic!("round {round}: exit {other:?}: {err}"),
            }
        }
        assert!(appended >= 1, "round {round}: nobody appended");
        assert_downloaded_as(
            &endpoint,
            &prefix,
            &dir.path().join(format!("t{round}")),
            &local,
            &format!("round {round}"),
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn ranks_killed_mid_conversion_on_s3_resume_on_another_rank_count() {
    let dir = tmp();
    let files = generated(dir.path(), 6);
    let server = Server::start(dir.path());
    let env = server.env();
    let prefix = "runs/sigkill.zarr";
    let url = format!("s3://{BUCKET}/{prefix}");
    // More than two journal batches per rank; the proxy stops answering
    // once the first has landed, so the ranks are alive mid-write when
    // they are killed, whatever this machine's speed.
    let layout = ["--chunks", "time=2,lat=23,lon=45"];
    let held = dir.path().join("held");
    let (mut gate, via_gate) = proxy(&server, 0, &held, Some("hold:/.zarrforge/journal/units-"));
    let args = convert_args(&url, &files, &layout);
    let mut child = Command::new("mpirun")
        .args(["-np", "2", BIN])
        .args(&args)
        .envs(via_gate.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("OMPI_MCA_orte_tmpdir_base", ompi_session_base())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + 2 * MINUTE;
    while std::fs::read_to_string(&held).unwrap_or_default() != "held" {
        assert!(Instant::now() < until, "no unit was journaled");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no handler runs, the lock and the journal stay behind.
    for pid in crate::reliability::rank_pids(prefix) {
        crate::reliability::signal(pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = gate.kill();
    let _ = gate.wait();
    let c = server.client(prefix);
    assert!(!c.exists("zarr.json").unwrap(), "committed");
    assert!(
        c.exists(".zarrforge/lock").unwrap(),
        "the killed run's lock"
    );
    // The holder is provably gone (dead PIDs on this host): taken over.
    let r = run(
        &env,
        None,
        &convert_args(&url, &files, &[layout[0], layout[1], "--resume"]),
        &[],
    );
    assert!(r.ok(), "{}", r.stderr);
    let local = dir.path().join("clean.zarr");
    assert!(zarrforge(None, &convert_args(s(&local), &files, &layout), 2 * MINUTE).ok());
    let got = download(&server, prefix, dir.path());
    assert_same_files(
        &comparable(&got),
        &comparable(&local),
        "resumed after SIGKILL",
    );
}

/// `convert --icechunk` to S3 (moto, which honours conditional writes) on 2
/// and 3 ranks: a create then an append, each one snapshot, read back by
/// `verify --icechunk --ref` on the tag of each version; the lock and the
/// journal are gone afterwards.
#[test]
fn an_icechunk_repository_on_s3_takes_a_create_and_an_append() {
    let dir = tmp();
    let files = inputs(&dir.path().join("in"));
    let (mut server, endpoint) = start_moto();
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let url = format!("s3://{BUCKET}/ic/repo");
    let layout = ["--icechunk", "--chunks", "time=2,lat=5,lon=3"];
    let mut args = convert_args(&url, &files[..3], &layout);
    args.extend(["--tag", "v1"]);
    let r = zarrforge_env(Some(2), &args, 2 * MINUTE, &env);
    assert!(r.ok(), "{}", r.stderr);
    let mut args = convert_args(&url, &files[3..], &layout);
    args.extend(["--append", "--tag", "v2"]);
    let r = zarrforge_env(Some(3), &args, 2 * MINUTE, &env);
    assert!(r.ok(), "{}", r.stderr);
    for (tag, upto) in [("v1", 3), ("v2", files.len())] {
        let mut args = vec!["verify", "--icechunk", "--ref", tag];
        args.extend(files[..upto].iter().map(|p| s(p)));
        args.push(&url);
        let r = zarrforge_env(Some(2), &args, 2 * MINUTE, &env);
        assert!(r.ok(), "{tag}: {}{}", r.stdout, r.stderr);
    }
    let left = client_at(&endpoint, "ic/repo").list(".zarrforge").unwrap();
    assert!(
        left.iter().all(|k| k.ends_with("store.json")),
        "lock or journal left: {left:?}"
    );
    server.kill().ok();
    server.wait().ok();
}
