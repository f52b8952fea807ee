//! An Icechunk repository as a store's storage (`convert --icechunk`).
//!
//! One [`Repo`] per output and process, opened once and shared by every
//! stage of the run ([`register`], then [`super::open`] returns it). It
//! routes keys:
//!
//! - Zarr keys (`zarr.json`, `t/zarr.json`, `t/c/0/1`) go into the run's
//!   Icechunk session: the writable session on the branch on rank 0, a fork
//!   of it on every other rank. Nothing is visible to readers before the
//!   commit of rank 0 ([`Repo::commit`]).
//! - zarrforge's own objects (`.zarrforge/...`: lock, journal, marker) go
//!   to plain storage at the repository's location (its directory or its
//!   S3 prefix), beside Icechunk's own objects.
//! - The store's state (`.zarrforge/dataset.bin`) is versioned with the
//!   data: it travels in the snapshot's metadata (`zarrforge.state`), so an
//!   append reads the state of the very snapshot it extends.
//!
//! Every chunk written through a session is also recorded ([`Repo::sync`]
//! writes the records as `.zarrforge/journal/refs-TOKEN-N`), so that a
//! resumed run puts the finished chunks of a killed one into its own
//! session ([`Repo::replay_refs`]) instead of writing them again.
//!
//! Serialized sessions hold the storage's credentials: they are sent over
//! MPI only, never written anywhere.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use icechunk::config::Credentials;
use icechunk::config::{
    ManifestConfig, ManifestSplitCondition, ManifestSplitDim, ManifestSplitDimCondition,
    ManifestSplittingConfig,
};
use icechunk::conflicts::basic_solver::{BasicConflictSolver, VersionSelection};
use icechunk::format::format_constants::SpecVersionBin;
use icechunk::format::manifest::{
    Checksum, ChunkPayload, SecondsSinceEpoch, VirtualChunkLocation, VirtualChunkRef,
};
use icechunk::format::{ChunkIndices, Path as NodePath, SnapshotId};
use icechunk::repository::VersionInfo;
use icechunk::session::Session;
use icechunk::storage::{S3Credentials, S3Options, S3StaticCredentials};
use icechunk::virtual_chunks::VirtualChunkContainer;
use icechunk::{ObjectStoreConfig, Repository, RepositoryConfig, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::url::Location;
use super::Storage;
use crate::store::error::WriteError;
use crate::store::layout::{JOURNAL_DIR, MARKER_DIR, STATE_FILE};

/// Key of the snapshot metadata entry that holds the store's state.
pub const STATE_PROPERTY: &str = "zarrforge.state";
pub use crate::store::layout::ICECHUNK_SPLIT_CHUNKS as SPLIT_CHUNKS;
/// Chunk writes in flight per process before the writer waits for them.
const INFLIGHT_CHUNKS: usize = 512;

/// What a run writes to, besides the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Branch the run commits to.
    pub branch: String,
    /// For readers (`verify`, `inspect`): a branch, tag or snapshot id to
    /// read instead of the branch tip.
    pub reference: Option<String>,
}

/// One chunk written through a session: enough to put it into another
/// session without writing its bytes again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Written {
    path: String,
    coords: Vec<u32>,
    payload: ChunkPayload,
}

/// The open repository of one output.
pub struct Repo {
    output: PathBuf,
    location: Location,
    target: Target,
    control: Arc<dyn Storage>,
    rt: tokio::runtime::Runtime,
    inner: Mutex<Inner>,
    /// Unique per process: names this process's records of written chunks.
    token: String,
}

#[derive(Default)]
struct Inner {
    repo: Option<Arc<Repository>>,
    session: Option<Arc<RwLock<Session>>>,
    /// The snapshot the branch pointed to when the session was opened.
    base: Option<SnapshotId>,
    /// The metadata of that snapshot.
    base_props: BTreeMap<String, serde_json::Value>,
    /// The state written by this run (committed with the snapshot).
    new_state: Option<Vec<u8>>,
    written: Vec<Written>,
    /// Chunks written by this process so far.
    total_written: u64,
    batches: u64,
    inflight: Vec<tokio::task::JoinHandle<Result<Option<Written>, String>>>,
    /// URL prefixes of the files that virtual references point into
    /// (`convert --virtual`): the repository declares a virtual chunk
    /// container for each.
    containers: Vec<String>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Icechunk repository {}", self.output.display())
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Repo>>> {
    static REPOS: OnceLock<Mutex<HashMap<PathBuf, Arc<Repo>>>> = OnceLock::new();
    REPOS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Opens the repository handle of `output` for this process (once; later
/// calls return the same handle).
///
/// # Errors
/// [`WriteError::Remote`]: a malformed URL, no S3 credentials, no runtime.
pub fn register(output: &Path, target: Target) -> Result<Arc<Repo>, WriteError> {
    let mut map = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(r) = map.get(output) {
        return Ok(Arc::clone(r));
    }
    let location = Location::parse(output)?;
    let control: Arc<dyn Storage> = match &location {
        Location::Dir(p) => Arc::new(super::fs::DirStorage::new(p.clone())),
        Location::S3(u) => super::s3::S3Storage::shared(u)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("zarrforge-icechunk")
        .enable_all()
        .build()
        .map_err(|e| WriteError::Remote {
            url: output.display().to_string(),
            what: "start the Icechunk client's threads",
            source: e.into(),
        })?;
    let token = format!(
        "{:x}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        std::process::id()
    );
    let r = Arc::new(Repo {
        output: output.to_path_buf(),
        location,
        target,
        control,
        rt,
        inner: Mutex::new(Inner::default()),
        token,
    });
    map.insert(output.to_path_buf(), Arc::clone(&r));
    Ok(r)
}

/// The virtual chunk container of the URL prefix `prefix` (`file:///DIR/`
/// or `s3://BUCKET/...`; S3 settings from the environment).
fn container(prefix: &str) -> Result<VirtualChunkContainer, String> {
    let store = if let Some(dir) = prefix.strip_prefix("file://") {
        ObjectStoreConfig::LocalFileSystem(PathBuf::from(dir))
    } else if prefix.starts_with("s3://") {
        let s = super::s3::credentials::Settings::from_env().map_err(|e| e.to_string())?;
        if s.endpoint.is_some() {
            ObjectStoreConfig::S3Compatible(s3_options(&s))
        } else {
            ObjectStoreConfig::S3(s3_options(&s))
        }
    } else {
        return Err(format!(
            "references to {prefix} (only file:// and s3:// are supported)"
        ));
    };
    VirtualChunkContainer::new(prefix.to_string(), store)
}

/// Icechunk's S3 options from zarrforge's S3 settings.
fn s3_options(s: &super::s3::credentials::Settings) -> S3Options {
    let opts = S3Options::default()
        .with_region(s.region.clone())
        .with_allow_http(s.allow_http)
        .with_force_path_style(!s.virtual_hosted);
    match &s.endpoint {
        Some(e) => opts.with_endpoint_url(e.clone()),
        None => opts,
    }
}

/// Credentials for the container of `prefix`.
fn credentials(prefix: &str) -> Option<Credentials> {
    if prefix.starts_with("file://") {
        return Some(Credentials::LocalFileSystemAccess);
    }
    let s = super::s3::credentials::Settings::from_env().ok()?;
    Some(Credentials::S3(S3Credentials::Static(
        S3StaticCredentials {
            access_key_id: s.key_id.clone(),
            secret_access_key: s.secret.clone(),
            session_token: s.token.clone(),
            expires_after: None,
        },
    )))
}

/// `repo` with a virtual chunk container for every prefix of `wanted` that
/// none of its containers covers (saved in its configuration), and access
/// to every container authorized.
async fn with_containers(repo: Repository, wanted: &[String]) -> Result<Repository, String> {
    let have: Vec<String> = repo
        .config()
        .virtual_chunk_containers()
        .map(|c| c.url_prefix().to_string())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !have.iter().any(|h| w.starts_with(h.as_str())))
        .collect();
    let repo = if missing.is_empty() {
        repo
    } else {
        let mut config = repo.config().clone();
        for m in missing {
            config.set_virtual_chunk_container(container(m)?)?;
        }
        let repo = repo
            .reopen(Some(config), None)
            .await
            .map_err(|e| e.to_string())?;
        repo.save_config().await.map_err(|e| e.to_string())?;
        repo
    };
    let auth: HashMap<String, Option<Credentials>> = repo
        .config()
        .virtual_chunk_containers()
        .map(|c| (c.url_prefix().to_string(), credentials(c.url_prefix())))
        .collect();
    if auth.is_empty() {
        return Ok(repo);
    }
    repo.reopen(None, Some(auth))
        .await
        .map_err(|e| e.to_string())
}

/// The handle of `output` when [`register`]ed.
pub fn registered(output: &Path) -> Option<Arc<Repo>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(output)
        .cloned()
}

/// A chunk key's array path and chunk coordinates (`t/c/0/1` →
/// `("/t", [0, 1])`); `None` for a metadata key.
pub fn chunk_key(key: &str) -> Option<(String, Vec<u32>)> {
    if key == "zarr.json" || key.ends_with("/zarr.json") {
        return None;
    }
    let (path, coords) = if key == "c" {
        ("", "")
    } else if let Some(p) = key.strip_suffix("/c") {
        (p, "")
    } else {
        let (p, c) = key
            .rsplit_once("/c/")
            .or_else(|| key.strip_prefix("c/").map(|c| ("", c)))?;
        (p, c)
    };
    let coords = if coords.is_empty() {
        Vec::new()
    } else {
        coords
            .split('/')
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
            .ok()?
    };
    Some((format!("/{path}"), coords))
}

fn is_control(key: &str) -> bool {
    key == MARKER_DIR || key.starts_with(".zarrforge/")
}

fn state_key() -> String {
    format!("{MARKER_DIR}/{STATE_FILE}")
}

/// Whether an error of Icechunk means "no such key".
fn not_found(e: &icechunk::store::StoreError) -> bool {
    matches!(e.kind(), icechunk::store::StoreErrorKind::NotFound(_))
}

impl Repo {
    fn err(&self, what: &'static str, e: impl std::fmt::Display) -> WriteError {
        WriteError::Remote {
            url: self.describe_repo(),
            what,
            source: e.to_string().replace('\n', " ").into(),
        }
    }

    fn describe_repo(&self) -> String {
        match &self.target.reference {
            Some(r) => format!("{} (Icechunk, at {r})", self.output.display()),
            None => format!(
                "{} (Icechunk, branch {})",
                self.output.display(),
                self.target.branch
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chunks this process has written (and recorded) so far.
    pub fn chunks_written(&self) -> u64 {
        self.lock().total_written
    }

    /// Declares the URL prefixes that virtual references of this run point
    /// into (before [`Repo::open_writable`]).
    pub fn set_containers(&self, prefixes: Vec<String>) {
        self.lock().containers = prefixes;
    }

    /// The branch the run commits to.
    pub fn branch(&self) -> &str {
        &self.target.branch
    }

    /// Icechunk's storage at the repository's location.
    async fn ic_storage(
        location: &Location,
    ) -> Result<Arc<dyn icechunk::Storage + Send + Sync>, String> {
        match location {
            Location::Dir(p) => {
                let abs = std::path::absolute(p).map_err(|e| e.to_string())?;
                icechunk::new_local_filesystem_storage(&abs)
                    .await
                    .map_err(|e| e.to_string())
            }
            Location::S3(u) => {
                let s = super::s3::credentials::Settings::from_env().map_err(|e| e.to_string())?;
                let opts = s3_options(&s);
                let creds = S3Credentials::Static(S3StaticCredentials {
                    access_key_id: s.key_id.clone(),
                    secret_access_key: s.secret.clone(),
                    session_token: s.token.clone(),
                    expires_after: None,
                });
                let prefix = (!u.prefix.is_empty()).then(|| u.prefix.clone());
                icechunk::new_s3_object_store_storage(
                    opts,
                    u.bucket.clone(),
                    prefix,
                    Some(creds),
                    Vec::new(),
                    Vec::new(),
                )
                .await
                .map_err(|e| e.to_string())
            }
        }
    }

    /// Whether a repository exists at the location.
    ///
    /// # Errors
    /// [`WriteError::Remote`] when the storage cannot be asked.
    pub fn repo_exists(&self) -> Result<bool, WriteError> {
        let location = self.location.clone();
        self.rt
            .block_on(async move {
                let st = Self::ic_storage(&location).await?;
                Repository::exists(st, None)
                    .await
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| self.err("look for the repository", e))
    }

    /// Opens the repository (creating it when `create` and absent, with
    /// manifests split along `split_dim`), then a writable session on the
    /// branch (a new branch starts at `main`'s tip, only when `create`).
    /// Returns `false`, opening nothing, when there is no repository or no
    /// such branch and not `create`. Rank 0.
    ///
    /// # Errors
    /// [`WriteError::Remote`] with Icechunk's message.
    pub fn open_writable(&self, create: bool, split_dim: Option<&str>) -> Result<bool, WriteError> {
        let location = self.location.clone();
        let branch = self.target.branch.clone();
        let containers = self.lock().containers.clone();
        let split = split_dim.map(str::to_string);
        let opened = self
            .rt
            .block_on(async move {
                let st = Self::ic_storage(&location).await?;
                let exists = Repository::exists(Arc::clone(&st), None)
                    .await
                    .map_err(|e| e.to_string())?;
                let repo = if exists {
                    Repository::open(st)
                        .execute()
                        .await
                        .map_err(|e| e.to_string())?
                } else if create {
                    let mut config = RepositoryConfig::default();
                    if let Some(dim) = split {
                        config.manifest = Some(ManifestConfig {
                            splitting: Some(ManifestSplittingConfig {
                                split_sizes: Some(vec![(
                                    ManifestSplitCondition::AnyArray,
                                    vec![ManifestSplitDim {
                                        condition: ManifestSplitDimCondition::DimensionName(dim),
                                        num_chunks: SPLIT_CHUNKS,
                                    }],
                                )]),
                            }),
                            ..ManifestConfig::default()
                        });
                    }
                    Repository::create(st)
                        .config(config)
                        .spec_version(SpecVersionBin::current())
                        .check_clean_root(false)
                        .execute()
                        .await
                        .map_err(|e| e.to_string())?
                } else {
                    return Ok(None);
                };
                let repo = with_containers(repo, &containers).await?;
                let branches = repo.list_branches().await.map_err(|e| e.to_string())?;
                if !branches.contains(&branch) {
                    if !create {
                        return Ok(None);
                    }
                    let tip = repo
                        .lookup_branch("main")
                        .await
                        .map_err(|e| e.to_string())?;
                    repo.create_branch(&branch, &tip)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let session = repo
                    .writable_session(&branch)
                    .await
                    .map_err(|e| e.to_string())?;
                let base = session.snapshot_id().clone();
                let props = Self::last_state(&repo, &branch).await?;
                Ok::<_, String>(Some((repo, session, base, props)))
            })
            .map_err(|e| self.err("open the repository", e))?;
        let Some((repo, session, base, props)) = opened else {
            return Ok(false);
        };
        let mut inner = self.lock();
        inner.repo = Some(Arc::new(repo));
        inner.session = Some(Arc::new(RwLock::new(session)));
        inner.base = Some(base);
        inner.base_props = props;
        Ok(true)
    }

    /// The metadata of the newest snapshot on `branch` that zarrforge made
    /// (another tool's commits may have come since; the arrays' shapes are
    /// read from the tip all the same). At most the last 10 000 snapshots
    /// are looked at.
    async fn last_state(
        repo: &Repository,
        branch: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, String> {
        use futures::StreamExt;
        let stream = repo
            .ancestry(&VersionInfo::BranchTipRef(branch.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream.take(10_000));
        let mut tip = None;
        while let Some(info) = stream.next().await {
            let info = info.map_err(|e| e.to_string())?;
            if info.metadata.contains_key(STATE_PROPERTY) {
                return Ok(info.metadata);
            }
            tip.get_or_insert(info.metadata);
        }
        Ok(tip.unwrap_or_default())
    }

    /// zarrforge's own objects at the repository's location (its lock,
    /// journal and marker), and the names at its root.
    pub fn control(&self) -> &Arc<dyn Storage> {
        &self.control
    }

    /// Whether the repository has the tag `tag`.
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn has_tag(&self, tag: &str) -> Result<bool, WriteError> {
        let location = self.location.clone();
        let tag = tag.to_string();
        self.rt
            .block_on(async move {
                let st = Self::ic_storage(&location).await?;
                let repo = Repository::open(st)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
                let tags = repo.list_tags().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(tags.contains(&tag))
            })
            .map_err(|e| self.err("list the tags", e))
    }

    /// Opens a read-only session at the target's reference (a branch, a
    /// tag or a snapshot id; the branch's tip without one).
    ///
    /// # Errors
    /// [`WriteError::Remote`]: no repository, or no such reference.
    pub fn open_readonly(&self) -> Result<(), WriteError> {
        let reference = self
            .target
            .reference
            .clone()
            .unwrap_or_else(|| self.target.branch.clone());
        self.open_readonly_at(&reference)
    }

    /// Reads `reference` (a branch, tag or snapshot id) from now on: a
    /// read-only session replaces the run's.
    ///
    /// # Errors
    /// [`WriteError::Remote`]: no repository, or no such reference.
    pub fn open_readonly_at(&self, reference: &str) -> Result<(), WriteError> {
        let location = self.location.clone();
        let reference = reference.to_string();
        let (repo, session, props) = self
            .rt
            .block_on(async move {
                let st = Self::ic_storage(&location).await?;
                let repo = Repository::open(st)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
                let repo = with_containers(repo, &[]).await?;
                let branches = repo.list_branches().await.map_err(|e| e.to_string())?;
                let tags = repo.list_tags().await.map_err(|e| e.to_string())?;
                let version = if branches.contains(&reference) {
                    VersionInfo::BranchTipRef(reference.clone())
                } else if tags.contains(&reference) {
                    VersionInfo::TagRef(reference.clone())
                } else {
                    let id = SnapshotId::try_from(reference.as_str()).map_err(|_| {
                        format!("'{reference}' is no branch, tag or snapshot id of the repository")
                    })?;
                    VersionInfo::SnapshotId(id)
                };
                let session = repo
                    .readonly_session(&version)
                    .await
                    .map_err(|e| e.to_string())?;
                let info = repo
                    .lookup_snapshot(session.snapshot_id())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((repo, session, info.metadata.clone()))
            })
            .map_err(|e| self.err("open the repository", e))?;
        let mut inner = self.lock();
        inner.base = Some(session.snapshot_id().clone());
        inner.repo = Some(Arc::new(repo));
        inner.session = Some(Arc::new(RwLock::new(session)));
        inner.base_props = props;
        Ok(())
    }

    fn session(&self) -> Result<Arc<RwLock<Session>>, WriteError> {
        if let Some(s) = &self.lock().session {
            return Ok(Arc::clone(s));
        }
        // A reader that did not say: the branch's tip (or --ref).
        self.open_readonly()?;
        self.lock()
            .session
            .clone()
            .ok_or_else(|| self.err("open a session", "no session"))
    }

    fn store(&self) -> Result<Store, WriteError> {
        let s = self.session()?;
        Ok(self.rt.block_on(Store::from_session(s)))
    }

    /// The snapshot the session is based on, as text.
    pub fn base_snapshot(&self) -> Option<String> {
        self.lock().base.as_ref().map(ToString::to_string)
    }

    /// The metadata of the base snapshot.
    pub fn base_properties(&self) -> BTreeMap<String, serde_json::Value> {
        self.lock().base_props.clone()
    }

    /// Rank 0, after the metadata is in its session: a fork for every
    /// other rank, as bytes (credentials inside: MPI only).
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn fork_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let s = self.session()?;
        self.rt
            .block_on(async move {
                let fork = s.read().await.fork().await.map_err(|e| e.to_string())?;
                fork.as_bytes().map_err(|e| e.to_string())
            })
            .map_err(|e| self.err("fork the session", e))
    }

    /// Every other rank: works in the fork sent by rank 0.
    ///
    /// # Errors
    /// [`WriteError::Remote`] when the bytes are not a session.
    pub fn adopt(&self, bytes: &[u8]) -> Result<(), WriteError> {
        let session = Session::from_bytes(bytes).map_err(|e| self.err("read the fork", e))?;
        let mut inner = self.lock();
        inner.base = Some(session.snapshot_id().clone());
        inner.session = Some(Arc::new(RwLock::new(session)));
        Ok(())
    }

    /// This rank's session as bytes, after every write has finished.
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn session_bytes(&self) -> Result<Vec<u8>, WriteError> {
        self.sync()?;
        let s = self.session()?;
        self.rt
            .block_on(async move { s.read().await.as_bytes().map_err(|e| e.to_string()) })
            .map_err(|e| self.err("serialise the session", e))
    }

    /// Merges a fork's changes (sent as bytes) into this rank's session.
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn merge_bytes(&self, bytes: &[u8]) -> Result<(), WriteError> {
        let other = Session::from_bytes(bytes).map_err(|e| self.err("read a fork", e))?;
        let s = self.session()?;
        self.rt
            .block_on(async move {
                s.write()
                    .await
                    .merge(other)
                    .await
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| self.err("merge a fork", e))
    }

    /// Removes every group and array from the session (`--overwrite`: the
    /// commit replaces the arrays; history keeps the old ones).
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn clear(&self) -> Result<(), WriteError> {
        let s = self.session()?;
        self.rt
            .block_on(async move { s.write().await.clear().await.map_err(|e| e.to_string()) })
            .map_err(|e| self.err("clear the session", e))
    }

    /// Puts the chunks recorded by earlier runs (`refs-*` in the journal)
    /// into the session; returns how many.
    ///
    /// # Errors
    /// [`WriteError`] reading or decoding a record, or setting a reference.
    pub fn replay_refs(&self) -> Result<u64, WriteError> {
        let dir = format!("{MARKER_DIR}/{JOURNAL_DIR}");
        let keys = self.control.list(&dir)?;
        let mut all = Vec::new();
        for k in keys
            .iter()
            .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with("refs-")))
        {
            let Some(bytes) = self.control.get(k)? else {
                continue;
            };
            // A torn record (killed while writing it) is skipped: its
            // units were not recorded as done either.
            if let Ok(list) = rmp_serde::from_slice::<Vec<Written>>(&bytes) {
                all.extend(list);
            }
        }
        let n = all.len() as u64;
        let s = self.session()?;
        self.rt
            .block_on(async move {
                let mut s = s.write().await;
                for w in all {
                    let path = NodePath::try_from(w.path.as_str()).map_err(|e| e.to_string())?;
                    s.set_chunk_ref(path, ChunkIndices(w.coords), Some(w.payload))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            })
            .map_err(|e| self.err("reuse the chunks of the interrupted run", e))?;
        Ok(n)
    }

    /// Rank 0: commits the session (with every fork merged) as one snapshot
    /// on the branch, with `properties` and this run's state in its
    /// metadata, then tags it. A branch that moved since the session was
    /// opened is rebased only when the two commits touch disjoint chunks
    /// and neither changed array metadata the other did; otherwise nothing
    /// is committed ([`Committed::Moved`]).
    ///
    /// # Errors
    /// [`WriteError::Remote`] for a failed commit or tag.
    pub fn commit(
        &self,
        message: &str,
        mut properties: BTreeMap<String, serde_json::Value>,
        tag: Option<&str>,
    ) -> Result<Committed, WriteError> {
        let s = self.session()?;
        let (repo, state) = {
            let inner = self.lock();
            (inner.repo.clone(), inner.new_state.clone())
        };
        let repo = repo.ok_or_else(|| self.err("commit", "the repository is not open"))?;
        if let Some(st) = state {
            properties.insert(
                STATE_PROPERTY.into(),
                base64::engine::general_purpose::STANDARD.encode(st).into(),
            );
        }
        let message = message.to_string();
        let tag = tag.map(str::to_string);
        let r = self.rt.block_on(async move {
            let solver = BasicConflictSolver {
                on_chunk_conflict: VersionSelection::Fail,
                fail_on_delete_of_updated_array: true,
                fail_on_delete_of_updated_group: true,
            };
            let mut s = s.write().await;
            let id = match s
                .commit(message)
                .properties(properties)
                .allow_empty(true)
                .rebase(&solver, 5)
                .execute()
                .await
            {
                Ok(id) => id,
                Err(e) => {
                    use icechunk::session::SessionErrorKind as K;
                    let text = e.to_string();
                    if matches!(e.kind(), K::Conflict { .. } | K::RebaseFailed { .. }) {
                        return Ok(Committed::Moved(text));
                    }
                    return Err(text);
                }
            };
            if let Some(t) = tag {
                repo.create_tag(&t, &id)
                    .await
                    .map_err(|e| format!("committed {id}, but the tag '{t}' failed: {e}"))?;
            }
            Ok(Committed::Snapshot(id.to_string()))
        });
        r.map_err(|e| self.err("commit", e))
    }

    /// The ancestry of the branch: (snapshot id, message, time), newest
    /// first.
    ///
    /// # Errors
    /// [`WriteError::Remote`].
    pub fn history(&self) -> Result<Vec<(String, String, String)>, WriteError> {
        let repo = self
            .lock()
            .repo
            .clone()
            .ok_or_else(|| self.err("read the history", "the repository is not open"))?;
        let branch = self.target.branch.clone();
        self.rt
            .block_on(async move {
                use futures::StreamExt;
                let stream = repo
                    .ancestry(&VersionInfo::BranchTipRef(branch))
                    .await
                    .map_err(|e| e.to_string())?;
                let all: Vec<_> = stream.collect().await;
                all.into_iter()
                    .map(|i| {
                        i.map(|i| (i.id.to_string(), i.message, i.flushed_at.to_rfc3339()))
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .map_err(|e| self.err("read the history", e))
    }

    async fn set(
        session: Arc<RwLock<Session>>,
        key: String,
        bytes: Bytes,
    ) -> Result<Option<Written>, String> {
        let Some((path, coords)) = chunk_key(&key) else {
            let store = Store::from_session(session).await;
            store.set(&key, bytes).await.map_err(|e| e.to_string())?;
            return Ok(None);
        };
        let node = NodePath::try_from(path.as_str()).map_err(|e| e.to_string())?;
        let idx = ChunkIndices(coords.clone());
        let writer = session
            .read()
            .await
            .get_chunk_writer(&node, &idx)
            .map_err(|e| e.to_string())?;
        let payload = writer(bytes).await.map_err(|e| e.to_string())?;
        Self::put_ref(&session, node, path, coords, payload).await
    }

    /// Puts `payload` as the chunk `coords` of array `node` (`path`) into
    /// the session and returns its record.
    async fn put_ref(
        session: &RwLock<Session>,
        node: NodePath,
        path: String,
        coords: Vec<u32>,
        payload: ChunkPayload,
    ) -> Result<Option<Written>, String> {
        session
            .write()
            .await
            .set_chunk_ref(node, ChunkIndices(coords.clone()), Some(payload.clone()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(Written {
            path,
            coords,
            payload,
        }))
    }

    async fn set_virtual(
        session: Arc<RwLock<Session>>,
        key: String,
        r: super::VirtualRef,
    ) -> Result<Option<Written>, String> {
        let (path, coords) = chunk_key(&key).ok_or_else(|| format!("{key} is not a chunk key"))?;
        let node = NodePath::try_from(path.as_str()).map_err(|e| e.to_string())?;
        let payload = ChunkPayload::Virtual(VirtualChunkRef {
            location: VirtualChunkLocation::from_url(&r.url).map_err(|e| e.to_string())?,
            offset: r.offset,
            length: r.length,
            checksum: r
                .modified
                .map(|t| Checksum::LastModified(SecondsSinceEpoch(t))),
        });
        Self::put_ref(&session, node, path, coords, payload).await
    }

    /// The session's keys under `prefix`, sorted: every key below it, or
    /// (`direct`) the names directly under it.
    fn session_keys(&self, prefix: &str, direct: bool) -> Result<Vec<String>, WriteError> {
        let store = self.store()?;
        let p = prefix.to_string();
        let mut keys = self
            .rt
            .block_on(async move {
                use futures::TryStreamExt;
                let keys = if direct {
                    let s = store.list_dir(&p).await.map_err(|e| e.to_string())?;
                    s.try_collect::<Vec<String>>().await
                } else {
                    let s = store.list_prefix(&p).await.map_err(|e| e.to_string())?;
                    s.try_collect::<Vec<String>>().await
                };
                keys.map_err(|e| e.to_string())
            })
            .map_err(|e| self.err("list", e))?;
        keys.sort();
        Ok(keys)
    }

    /// Keeps a write in flight; waits for all of them once there are
    /// [`INFLIGHT_CHUNKS`].
    fn in_flight(
        &self,
        h: tokio::task::JoinHandle<Result<Option<Written>, String>>,
    ) -> Result<(), WriteError> {
        let full = {
            let mut inner = self.lock();
            inner.inflight.push(h);
            inner.inflight.len() >= INFLIGHT_CHUNKS
        };
        if full {
            self.finish_inflight()?;
        }
        Ok(())
    }

    fn finish_inflight(&self) -> Result<(), WriteError> {
        let handles = std::mem::take(&mut self.lock().inflight);
        let mut first = None;
        for h in handles {
            match self.rt.block_on(h) {
                Ok(Ok(w)) => {
                    if let Some(w) = w {
                        self.lock().written.push(w);
                    }
                }
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(e) => {
                    first.get_or_insert(e.to_string());
                }
            }
        }
        match first {
            Some(e) => Err(self.err("write a chunk", e)),
            None => Ok(()),
        }
    }
}

/// What a garbage collection deleted (or would delete, for a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Bytes of chunks.
    pub bytes: u64,
    /// Chunks.
    pub chunks: u64,
    /// Manifests.
    pub manifests: u64,
    /// Snapshots (a fork's, an abandoned run's).
    pub snapshots: u64,
    /// Transaction logs.
    pub transaction_logs: u64,
    /// Objects whose delete failed (garbage for the next collection).
    pub failed: u64,
}

impl Repo {
    /// Deletes what no snapshot or reference reaches and was written
    /// before `before`: the chunks of abandoned runs, the snapshots of
    /// forks. History (snapshots on a branch or tag) is kept.
    ///
    /// # Errors
    /// [`WriteError::Remote`] with Icechunk's message.
    pub fn collect_garbage(
        &self,
        before: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<Collected, WriteError> {
        use icechunk::ops::gc::{garbage_collect, GCConfig};
        use std::num::{NonZeroU16, NonZeroUsize};
        let location = self.location.clone();
        self.rt
            .block_on(async move {
                let st = Self::ic_storage(&location).await?;
                let repo = Repository::open(st)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
                let cutoff = chrono::DateTime::<chrono::Utc>::from(before);
                let (Some(snaps), Some(mem), Some(fetches), Some(fails)) = (
                    NonZeroU16::new(50),
                    NonZeroUsize::new(512 << 20),
                    NonZeroU16::new(8),
                    NonZeroU16::new(10),
                ) else {
                    return Err("bad limits".to_string());
                };
                let cfg = GCConfig::clean_all(
                    cutoff, cutoff, None, snaps, mem, mem, fetches, fetches, fails, None, dry_run,
                );
                let s = Box::pin(garbage_collect(
                    Arc::clone(repo.asset_manager()),
                    &cfg,
                    None,
                    1000,
                ))
                .await
                .map_err(|e| e.to_string())?;
                Ok(Collected {
                    bytes: s.bytes_deleted,
                    chunks: s.chunks_deleted,
                    manifests: s.manifests_deleted,
                    snapshots: s.snapshots_deleted,
                    transaction_logs: s.transaction_logs_deleted,
                    failed: s.objects_failed_to_delete,
                })
            })
            .map_err(|e| self.err("collect garbage", e))
    }
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The new snapshot's id.
    Snapshot(String),
    /// The branch moved and the commits conflict: nothing was committed.
    Moved(String),
}

impl Storage for Repo {
    fn describe(&self, key: &str) -> String {
        if is_control(key) {
            self.control.describe(key)
        } else if key.is_empty() {
            self.describe_repo()
        } else {
            format!("{}: {key}", self.describe_repo())
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), WriteError> {
        if key == state_key() {
            self.lock().new_state = Some(bytes.to_vec());
            return Ok(());
        }
        if is_control(key) {
            return self.control.put(key, bytes);
        }
        let s = self.session()?;
        let w = self
            .rt
            .block_on(Self::set(s, key.to_string(), Bytes::copy_from_slice(bytes)))
            .map_err(|e| self.err("write", format!("{key}: {e}")))?;
        if let Some(w) = w {
            self.lock().written.push(w);
        }
        Ok(())
    }

    fn put_virtual(&self, key: &str, r: super::VirtualRef) -> Result<(), WriteError> {
        let s = self.session()?;
        self.in_flight(self.rt.spawn(Self::set_virtual(s, key.to_string(), r)))
    }

    fn put_later(&self, key: &str, bytes: Vec<u8>) -> Result<(), WriteError> {
        if is_control(key) {
            return self.put(key, &bytes);
        }
        let s = self.session()?;
        self.in_flight(
            self.rt
                .spawn(Self::set(s, key.to_string(), Bytes::from(bytes))),
        )
    }

    fn sync(&self) -> Result<(), WriteError> {
        self.finish_inflight()?;
        let (written, n) = {
            let mut inner = self.lock();
            let n = inner.batches;
            if !inner.written.is_empty() {
                inner.batches += 1;
            }
            inner.total_written += inner.written.len() as u64;
            (std::mem::take(&mut inner.written), n)
        };
        if !written.is_empty() {
            let bytes = rmp_serde::to_vec(&written).map_err(|e| self.err("record chunks", e))?;
            let key = format!("{MARKER_DIR}/{JOURNAL_DIR}/refs-{}-{n}", self.token);
            self.control.put(&key, &bytes)?;
        }
        self.control.sync()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, WriteError> {
        if key == state_key() {
            if let Some(s) = &self.lock().new_state {
                return Ok(Some(s.clone()));
            }
            if self.lock().session.is_none() {
                self.session()?;
            }
            let props = self.lock().base_props.clone();
            return Ok(props
                .get(STATE_PROPERTY)
                .and_then(serde_json::Value::as_str)
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok()));
        }
        if is_control(key) {
            return self.control.get(key);
        }
        let store = self.store()?;
        let key = key.to_string();
        self.rt
            .block_on(async move {
                match store.get(&key, &icechunk::format::ByteRange::ALL).await {
                    Ok(b) => Ok(Some(b.to_vec())),
                    Err(e) if not_found(&e) => Ok(None),
                    Err(e) => Err(format!("{key}: {e}")),
                }
            })
            .map_err(|e| self.err("read", e))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, WriteError> {
        if key == state_key() || !is_control(key) {
            return Ok(self.get(key)?.map(|b| b.len() as u64));
        }
        self.control.size(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        if is_control(prefix) {
            return self.control.list(prefix);
        }
        let mut keys = self.session_keys(prefix, false)?;
        if prefix.is_empty() {
            keys.extend(self.control.list(MARKER_DIR)?);
            keys.sort();
        }
        Ok(keys)
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, WriteError> {
        if is_control(prefix) {
            return self.control.children(prefix);
        }
        self.session_keys(prefix, true)
    }

    fn delete(&self, keys: &[String]) -> Result<(), WriteError> {
        let (control, data): (Vec<String>, Vec<String>) =
            keys.iter().cloned().partition(|k| is_control(k));
        self.control.delete(&control)?;
        if data.is_empty() {
            return Ok(());
        }
        let store = self.store()?;
        self.rt
            .block_on(async move {
                for k in data {
                    store.delete(&k).await.map_err(|e| format!("{k}: {e}"))?;
                }
                Ok::<_, String>(())
            })
            .map_err(|e| self.err("delete", e))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, WriteError> {
        self.control.put_new(key, bytes)
    }

    fn get_tagged(&self, key: &str) -> Result<Option<super::Tagged>, WriteError> {
        self.control.get_tagged(key)
    }

    fn put_replace(&self, key: &str, bytes: &[u8], tag: &str) -> Result<bool, WriteError> {
        self.control.put_replace(key, bytes, tag)
    }

    fn dir(&self) -> Option<&Path> {
        self.control.dir()
    }

    fn check(&self) -> Result<(), WriteError> {
        self.control.check()
    }

    fn set_inflight_bytes(&self, bytes: u64) {
        self.control.set_inflight_bytes(bytes);
    }

    fn uploaded(&self) -> Option<(u64, u64)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_are_parsed_as_icechunk_does() {
        assert_eq!(chunk_key("t/c/0/12"), Some(("/t".into(), vec![0, 12])));
        assert_eq!(chunk_key("g/c/v/c/3"), Some(("/g/c/v".into(), vec![3])));
        assert_eq!(chunk_key("s/c"), Some(("/s".into(), vec![])));
        assert_eq!(chunk_key("c/1"), Some(("/".into(), vec![1])));
        assert_eq!(chunk_key("t/zarr.json"), None);
        assert_eq!(chunk_key("zarr.json"), None);
        assert_eq!(chunk_key("t/c/x"), None);
    }
}
