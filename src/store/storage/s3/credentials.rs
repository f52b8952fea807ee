//! Credentials and endpoint of an S3 store, from the standard environment
//! and the shared files of the AWS tools:
//!
//! - keys: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//!   otherwise the profile `AWS_PROFILE` (or `default`) of
//!   `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`), then of
//!   `AWS_CONFIG_FILE` (`~/.aws/config`);
//! - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`,
//!   else `us-east-1`;
//! - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
//!   `endpoint_url`; without one, AWS itself;
//! - plain HTTP: allowed for an `http://` endpoint the user named, or with
//!   `AWS_ALLOW_HTTP=true`;
//! - addressing: path style for a custom endpoint (what on-premises services
//!   expect), virtual-hosted style on AWS; `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`
//!   chooses;
//! - `ZARRFORGE_S3_RETRY_SECONDS`: how long a request is retried (default
//!   60 s) before the run fails (and can be resumed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the client is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Access key id.
    pub key_id: String,
    /// Secret access key.
    pub secret: String,
    /// Session token.
    pub token: Option<String>,
    /// Region.
    pub region: String,
    /// Endpoint URL, `None` for AWS.
    pub endpoint: Option<String>,
    /// Plain HTTP allowed.
    pub allow_http: bool,
    /// Virtual-hosted-style addressing.
    pub virtual_hosted: bool,
    /// How long a failing request is retried.
    pub retry_timeout: Duration,
}

/// Why no settings could be made.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No keys anywhere.
    #[error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile of {credentials}")]
    NoCredentials {
        /// The credentials file looked at.
        credentials: String,
    },
    /// A key without its secret.
    #[error("{0} is set without its secret access key")]
    NoSecret(String),
    /// `AWS_PROFILE` names a profile found in neither file.
    #[error("AWS_PROFILE={profile}: no such profile in {credentials} or {config}")]
    NoProfile {
        /// Profile.
        profile: String,
        /// Credentials file.
        credentials: String,
        /// Config file.
        config: String,
    },
    /// A malformed setting.
    #[error("{name}={value}: {why}")]
    Bad {
        /// Variable.
        name: &'static str,
        /// Value.
        value: String,
        /// Why.
        why: &'static str,
    },
}

/// Sections of an INI file (`[name]` → key → value).
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    out
}

impl Settings {
    /// From this process's environment and the user's files.
    ///
    /// # Errors
    /// [`SettingsError`].
    pub fn from_env() -> Result<Self, SettingsError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::resolve(&|k| std::env::var(k).ok(), home.as_deref())
    }

    /// From `env` and the files under `home`. Pure but for reading the
    /// two files.
    ///
    /// # Errors
    /// [`SettingsError`].
    #[allow(clippy::too_many_lines)] // one table of precedences, read top to bottom
    pub fn resolve(
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, SettingsError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let file = |var: &str, rel: &str| -> PathBuf {
            get(var).map_or_else(
                || home.unwrap_or(Path::new("/")).join(".aws").join(rel),
                PathBuf::from,
            )
        };
        let cred_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let conf_path = file("AWS_CONFIG_FILE", "config");
        let read = |p: &Path| std::fs::read_to_string(p).map(|t| parse_ini(&t)).ok();
        let creds = read(&cred_path).unwrap_or_default();
        let conf = read(&conf_path).unwrap_or_default();
        let profile_set = get("AWS_PROFILE");
        let profile = profile_set.clone().unwrap_or_else(|| "default".into());
        let cred_sec = creds.get(&profile);
        let conf_sec = conf
            .get(&format!("profile {profile}"))
            .or_else(|| conf.get(&profile));
        if let Some(p) = &profile_set {
            if cred_sec.is_none() && conf_sec.is_none() && get("AWS_ACCESS_KEY_ID").is_none() {
                return Err(SettingsError::NoProfile {
                    profile: p.clone(),
                    credentials: cred_path.display().to_string(),
                    config: conf_path.display().to_string(),
                });
            }
        }
        let from_files = |k: &str| -> Option<String> {
            cred_sec
                .and_then(|s| s.get(k))
                .or_else(|| conf_sec.and_then(|s| s.get(k)))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let (key_id, secret, token) = if let Some(id) = get("AWS_ACCESS_KEY_ID") {
            let secret = get("AWS_SECRET_ACCESS_KEY")
                .ok_or_else(|| SettingsError::NoSecret("AWS_ACCESS_KEY_ID".into()))?;
            (id, secret, get("AWS_SESSION_TOKEN"))
        } else if let Some(id) = from_files("aws_access_key_id") {
            let secret = from_files("aws_secret_access_key").ok_or_else(|| {
                SettingsError::NoSecret(format!("aws_access_key_id of profile {profile}"))
            })?;
            (id, secret, from_files("aws_session_token"))
        } else {
            return Err(SettingsError::NoCredentials {
                credentials: cred_path.display().to_string(),
            });
        };
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .or_else(|| from_files("region"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = get("AWS_ENDPOINT_URL_S3")
            .or_else(|| get("AWS_ENDPOINT_URL"))
            .or_else(|| from_files("endpoint_url"))
            .map(|e| e.trim_end_matches('/').to_string());
        let flag = |name: &'static str| -> Result<Option<bool>, SettingsError> {
            match get(name).map(|v| v.to_lowercase()) {
                None => Ok(None),
                Some(v) if v == "true" || v == "1" => Ok(Some(true)),
                Some(v) if v == "false" || v == "0" => Ok(Some(false)),
                Some(v) => Err(SettingsError::Bad {
                    name,
                    value: v,
                    why: "expected true or false",
                }),
            }
        };
        let allow_http = flag("AWS_ALLOW_HTTP")?.unwrap_or_else(|| {
            endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
        });
        let virtual_hosted =
            flag("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")?.unwrap_or(endpoint.is_none());
        let retry_timeout = match get("ZARRFORGE_S3_RETRY_SECONDS") {
            None => Duration::from_mins(1),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(SettingsError::Bad {
                    name: "ZARRFORGE_S3_RETRY_SECONDS",
                    value: v,
                    why: "expected a number of seconds",
                })?,
        };
        Ok(Self {
            key_id,
            secret,
            token,
            region,
            endpoint,
            allow_http,
            virtual_hosted,
            retry_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_environment_comes_first_then_the_profile_files() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[hpc]\naws_access_key_id=H\naws_secret_access_key=HS\naws_session_token=T\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile hpc]\nregion = eu-west-2\nendpoint_url = http://s3.centre.example:8080/\n",
        )
        .unwrap();
        let h = Some(home.path());
        let s = Settings::resolve(&env(&[("AWS_PROFILE", "hpc")]), h).unwrap();
        assert_eq!(
            (s.key_id.as_str(), s.secret.as_str(), s.token.as_deref()),
            ("H", "HS", Some("T"))
        );
        assert_eq!(s.region, "eu-west-2");
        assert_eq!(s.endpoint.as_deref(), Some("http://s3.centre.example:8080"));
        assert!(s.allow_http && !s.virtual_hosted);
        let s = Settings::resolve(&env(&[]), h).unwrap();
        assert_eq!((s.key_id.as_str(), s.region.as_str()), ("D", "us-east-1"));
        assert!(s.endpoint.is_none() && s.virtual_hosted && !s.allow_http);
        let s = Settings::resolve(
            &env(&[
                ("AWS_ACCESS_KEY_ID", "E"),
                ("AWS_SECRET_ACCESS_KEY", "ES"),
                ("AWS_ENDPOINT_URL", "https://objects.example"),
                ("AWS_REGION", "r1"),
                ("ZARRFORGE_S3_RETRY_SECONDS", "2.5"),
            ]),
            h,
        )
        .unwrap();
        assert_eq!((s.key_id.as_str(), s.region.as_str()), ("E", "r1"));
        assert!(!s.allow_http && !s.virtual_hosted);
        assert_eq!(s.retry_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn missing_or_partial_credentials_are_named() {
        let home = tempfile::tempdir().unwrap();
        let h = Some(home.path());
        assert!(matches!(
            Settings::resolve(&env(&[]), h),
            Err(SettingsError::NoCredentials { .. })
        ));
        assert!(matches!(
            Settings::resolve(&env(&[("AWS_ACCESS_KEY_ID", "x")]), h),
            Err(SettingsError::NoSecret(_))
        ));
        assert!(matches!(
            Settings::resolve(&env(&[("AWS_PROFILE", "nope")]), h),
            Err(SettingsError::NoProfile { .. })
        ));
        assert!(matches!(
            Settings::resolve(
                &env(&[
                    ("AWS_ACCESS_KEY_ID", "x"),
                    ("AWS_SECRET_ACCESS_KEY", "y"),
                    ("AWS_ALLOW_HTTP", "maybe")
                ]),
                h
            ),
            Err(SettingsError::Bad { .. })
        ));
    }
}
