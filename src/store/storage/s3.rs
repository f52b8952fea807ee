//! A store on S3-compatible object storage (AWS, or a centre's own service:
//! Ceph RGW, `MinIO`, ...), through `object_store`.
//!
//! Each rank has its own client and a small multi-threaded runtime. Chunk
//! uploads ([`Storage::put_later`]) run concurrently, bounded by bytes in
//! flight (a share of `--max-memory`) and by a request count; a unit is
//! journaled only after [`Storage::sync`] has seen its upload succeed.
//! Requests are retried with exponential backoff on throttling (503
//! `SlowDown`, 429), other 5xx answers and connection errors. Objects above
//! [`MULTIPART_BYTES`] go up as multipart uploads, aborted when a part fails
//! so that no parts are left behind.

pub mod credentials;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use tokio::sync::Semaphore;

pub use credentials::{Settings, SettingsError};

use super::url::S3Url;
use super::Storage;
use crate::store::error::WriteError;

/// Objects larger than this go up as multipart uploads (unless
/// `ZARRFORGE_S3_MULTIPART_BYTES` says otherwise).
pub const MULTIPART_BYTES: usize = 32 << 20;

/// The multipart threshold in force.
fn multipart_bytes() -> usize {
    static V: OnceLock<usize> = OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("ZARRFORGE_S3_MULTIPART_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MULTIPART_BYTES)
    })
}
/// Size of one part of a multipart upload.
pub const PART_BYTES: usize = 16 << 20;
/// Uploads in flight per rank at most.
pub const MAX_REQUESTS: usize = 32;
/// Bytes in flight per rank unless the run sets another share.
pub const DEFAULT_INFLIGHT_BYTES: u64 = 64 << 20;

/// An S3 store.
pub struct S3Storage {
    url: S3Url,
    endpoint: String,
    client: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
    bytes: Arc<Semaphore>,
    limit_kib: Mutex<u32>,
    requests: Arc<Semaphore>,
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    failed: Arc<Mutex<Option<WriteError>>>,
    stats: Arc<Counters>,
}

/// Requests and bytes sent by this rank.
#[derive(Debug, Default)]
pub struct Counters {
    /// PUT requests (a multipart upload counts its parts).
    pub puts: std::sync::atomic::AtomicU64,
    /// Bytes uploaded.
    pub bytes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage({} at {})", self.url, self.endpoint)
    }
}

/// Collapses an error's text to one line (servers answer with XML bodies).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl S3Storage {
    /// The process's client of `url` (made on first use).
    ///
    /// # Errors
    /// [`WriteError::Remote`] when no credentials are found or the client
    /// cannot be built.
    pub fn shared(url: &S3Url) -> Result<Arc<Self>, WriteError> {
        static CLIENTS: OnceLock<Mutex<HashMap<S3Url, Arc<S3Storage>>>> = OnceLock::new();
        let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.get(url) {
            return Ok(Arc::clone(s));
        }
        let settings = Settings::from_env().map_err(|e| WriteError::Remote {
            url: url.to_string(),
            what: "find S3 credentials and endpoint",
            source: e.to_string().into(),
        })?;
        let s = Arc::new(Self::with_settings(url.clone(), &settings)?);
        map.insert(url.clone(), Arc::clone(&s));
        Ok(s)
    }

    /// A client of `url` made from `settings` (not shared: tools and tests).
    ///
    /// # Errors
    /// [`WriteError::Remote`] when the client cannot be built.
    pub fn with_settings(url: S3Url, settings: &Settings) -> Result<Self, WriteError> {
        let err = |what: &'static str, msg: String| WriteError::Remote {
            url: url.to_string(),
            what,
            source: msg.into(),
        };
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(10),
                base: 2.0,
            },
            max_retries: 12,
            retry_timeout: settings.retry_timeout,
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.key_id)
            .with_secret_access_key(&settings.secret)
            .with_virtual_hosted_style_request(settings.virtual_hosted)
            .with_allow_http(settings.allow_http)
            .with_retry(retry)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(settings.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_mins(2)),
            );
        if let Some(t) = &settings.token {
            b = b.with_token(t);
        }
        if let Some(e) = &settings.endpoint {
            b = b.with_endpoint(e);
        }
        let client = b
            .build()
            .map_err(|e| err("set up the S3 client", one_line(&e)))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zarrforge-s3")
            .enable_all()
            .build()
            .map_err(|e| err("start the S3 client's threads", e.to_string()))?;
        let limit_kib = u32::try_from(DEFAULT_INFLIGHT_BYTES >> 10).unwrap_or(u32::MAX);
        Ok(Self {
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS {}", settings.region)),
            url,
            client: Arc::new(client),
            rt,
            bytes: Arc::new(Semaphore::new(limit_kib as usize)),
            limit_kib: Mutex::new(limit_kib),
            requests: Arc::new(Semaphore::new(MAX_REQUESTS)),
            pending: Mutex::new(Vec::new()),
            failed: Arc::new(Mutex::new(None)),
            stats: Arc::new(Counters::default()),
        })
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Requests and bytes this rank sent.
    pub fn counters(&self) -> &Counters {
        &self.stats
    }

    /// Sets how many bytes of uploads may be in flight (at least one
    /// object's worth is always allowed).
    fn set_limit(&self, bytes: u64) {
        let want = u32::try_from((bytes >> 10).max(1024)).unwrap_or(u32::MAX);
        let mut have = self
            .limit_kib
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if want > *have {
            self.bytes.add_permits((want - *have) as usize);
        } else {
            let gone = self.bytes.forget_permits((*have - want) as usize);
            // Permits held by uploads in flight are given back later: take
            // them off the total instead of waiting.
            let _ = gone;
        }
        *have = want;
    }

    fn path(&self, key: &str) -> Result<ObjPath, WriteError> {
        let full = super::join(&self.url.prefix, key);
        ObjPath::parse(&full).map_err(|e| WriteError::Remote {
            url: self.describe(key),
            what: "make the object key",
            source: one_line(&e).into(),
        })
    }

    fn remote(&self, key: &str, what: &'static str, e: &object_store::Error) -> WriteError {
        WriteError::Remote {
            url: self.describe(key),
            what,
            source: hint(e).into(),
        }
    }

    fn take_failure(&self) -> Result<(), WriteError> {
        match self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether the server refuses a second create-only PUT of `key` (which
    /// must exist): `If-None-Match: *` honoured. A server that ignores it
    /// overwrites the object with `probe`.
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn honours_create_only(&self, key: &str, probe: &[u8]) -> Result<bool, WriteError> {
        Ok(!self.put_new(key, probe)?)
    }
}

/// What a failed upload during a run means for the user.
const RESUMABLE: &str = "; finished units are recorded: once the object store answers again, run the same command with --resume";

/// The server's error in one line, with what it most likely means.
fn hint(e: &object_store::Error) -> String {
    let text = one_line(e);
    let why = if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        " (the bucket does not exist: create it first)"
    } else if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("AccessDenied")
        || text.contains("403 Forbidden")
    {
        " (the credentials were refused: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    } else if text.contains("error sending request")
        || text.contains("Connect")
        || text.contains("connection")
    {
        " (the endpoint cannot be reached: check AWS_ENDPOINT_URL and that the server is up)"
    } else {
        ""
    };
    format!("{text}{why}")
}

async fn upload(
    client: &AmazonS3,
    path: &ObjPath,
    bytes: Vec<u8>,
    stats: &Counters,
) -> Result<(), object_store::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let n = bytes.len() as u64;
    if bytes.len() <= multipart_bytes() {
        client.put(path, PutPayload::from(bytes)).await?;
        stats.puts.fetch_add(1, Relaxed);
        stats.bytes.fetch_add(n, Relaxed);
        return Ok(());
    }
    let mut up = client.put_multipart(path).await?;
    let bytes = bytes::Bytes::from(bytes);
    let mut parts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + PART_BYTES).min(bytes.len());
        parts.push(up.put_part(PutPayload::from(bytes.slice(at..end))));
        at = end;
    }
    let nparts = parts.len() as u64;
    let sent = futures::future::try_join_all(parts).await;
    let done = match sent {
        Ok(_) => up.complete().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        // No parts left behind, whatever went wrong.
        let _ = up.abort().await;
        return Err(e);
    }
    stats.puts.fetch_add(nparts + 2, Relaxed);
    stats.bytes.fetch_add(n, Relaxed);
    Ok(())
}

impl Storage for S3Storage {
    fn describe(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.to_string()
        } else {
            format!("{}/{key}", self.url)
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let stats = Arc::clone(&self.stats);
        let bytes = bytes.to_vec();
        self.rt
            .block_on(async move { upload(&client, &path, bytes, &stats).await })
            .map_err(|e| WriteError::Remote {
                url: self.describe(key),
                what: "upload",
                source: format!("{}{RESUMABLE}", hint(&e)).into(),
            })
    }

    fn put_later(&self, key: &str, bytes: Vec<u8>) -> Result<(), WriteError> {
        self.take_failure()?;
        let path = self.path(key)?;
        let limit = *self
            .limit_kib
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kib = u32::try_from((bytes.len() as u64).div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, limit.max(1));
        let (bytes_sem, req_sem) = (Arc::clone(&self.bytes), Arc::clone(&self.requests));
        let permits = self.rt.block_on(async move {
            let b = bytes_sem.acquire_many_owned(kib).await?;
            let r = req_sem.acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((b, r))
        });
        let Ok(permits) = permits else {
            return Err(WriteError::Remote {
                url: self.describe(key),
                what: "queue the upload",
                source: "the upload queue is closed".into(),
            });
        };
        let client = Arc::clone(&self.client);
        let failed = Arc::clone(&self.failed);
        let stats = Arc::clone(&self.stats);
        let url = self.describe(key);
        let h = self.rt.spawn(async move {
            let r = upload(&client, &path, bytes, &stats).await;
            drop(permits);
            if let Err(e) = r {
                let mut f = failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if f.is_none() {
                    *f = Some(WriteError::Remote {
                        url,
                        what: "upload",
                        source: format!("{}{RESUMABLE}", hint(&e)).into(),
                    });
                }
            }
        });
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= 4 * MAX_REQUESTS {
            pending.retain(|h| !h.is_finished());
        }
        pending.push(h);
        Ok(())
    }

    fn sync(&self) -> Result<(), WriteError> {
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.rt.block_on(async move {
            for h in handles {
                let _ = h.await;
            }
        });
        self.take_failure()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            match client.get(&path).await {
                Ok(g) => g.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "download", &e))
    }

    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Option<Vec<u8>>, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            let range = match len {
                Some(l) => object_store::GetRange::Bounded(offset..offset + l),
                None => object_store::GetRange::Offset(offset),
            };
            if len == Some(0) {
                return client.head(&path).await.map(|_| Some(Vec::new()));
            }
            let opts = object_store::GetOptions {
                range: Some(range),
                ..Default::default()
            };
            match client.get_opts(&path, opts).await {
                Ok(g) => g.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "download", &e))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            match client.head(&path).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "look up", &e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let path = self.path(prefix)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            let p = (!path.as_ref().is_empty()).then_some(path);
            client
                .list(p.as_ref())
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>()
                .await
        });
        let strip = if self.url.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.url.prefix)
        };
        let mut keys: Vec<String> = r
            .map_err(|e| self.remote(prefix, "list", &e))?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&strip).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        let path = self.path(prefix)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            let p = (!path.as_ref().is_empty()).then_some(path);
            client.list_with_delimiter(p.as_ref()).await
        });
        let r = r.map_err(|e| self.remote(prefix, "list", &e))?;
        let name = |p: &ObjPath| p.filename().unwrap_or_default().to_string();
        let mut out: Vec<String> = r
            .objects
            .iter()
            .map(|m| name(&m.location))
            .chain(r.common_prefixes.iter().map(|p| format!("{}/", name(p))))
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, keys: &[String]) -> Result<(), WriteError> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths = keys
            .iter()
            .map(|k| self.path(k))
            .collect::<Result<Vec<_>, _>>()?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
            let mut out = client.delete_stream(stream);
            while let Some(r) = out.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        r.map_err(|e| self.remote(&keys[0], "delete", &e))
    }

    /// Checks, before anything is read or written, that the endpoint
    /// answers, the credentials are accepted and the bucket exists: one
    /// listing of the store's prefix.
    fn check(&self) -> Result<(), WriteError> {
        let prefix = self.path("")?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            let p = (!prefix.as_ref().is_empty()).then_some(prefix);
            client.list_with_delimiter(p.as_ref()).await
        });
        r.map(|_| ())
            .map_err(|e| self.remote("", "check the bucket and the credentials", &e))
    }

    fn set_inflight_bytes(&self, bytes: u64) {
        self.set_limit(bytes);
    }

    fn uploaded(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        Some((
            self.stats.puts.load(Relaxed),
            self.stats.bytes.load(Relaxed),
        ))
    }

    fn get_tagged(&self, key: &str) -> Result<Option<super::Tagged>, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let r = self.rt.block_on(async move {
            match client.get(&path).await {
                Ok(g) => {
                    let tag = g.meta.e_tag.clone();
                    g.bytes().await.map(|b| Some((b.to_vec(), tag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "download", &e))
    }

    fn put_replace(&self, key: &str, bytes: &[u8], tag: &str) -> Result<bool, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let payload = PutPayload::from(bytes.to_vec());
        let version = object_store::UpdateVersion {
            e_tag: Some(tag.to_string()),
            version: None,
        };
        let r = self.rt.block_on(async move {
            let opts = PutOptions {
                mode: PutMode::Update(version),
                ..Default::default()
            };
            match client.put_opts(&path, payload, opts).await {
                Ok(_) => Ok(true),
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => Ok(false),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "replace conditionally", &e))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, WriteError> {
        let path = self.path(key)?;
        let client = Arc::clone(&self.client);
        let payload = PutPayload::from(bytes.to_vec());
        let r = self.rt.block_on(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match client.put_opts(&path, payload, opts).await {
                Ok(_) => Ok(true),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(false),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.remote(key, "create", &e))
    }
}
