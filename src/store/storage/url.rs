//! The output's address: a directory or `s3://BUCKET/PREFIX`. Pure.

use std::path::{Path, PathBuf};

use crate::store::error::WriteError;

/// An S3 address: bucket and key prefix (no leading or trailing `/`; empty
/// for a store at the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Url {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the store.
    pub prefix: String,
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Where a store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Dir(PathBuf),
    /// Object storage.
    S3(S3Url),
}

/// Whether `s` is a URL (`scheme://...`) rather than a path.
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
    })
}

impl Location {
    /// Parses an output. A path that is not a URL is a directory.
    ///
    /// # Errors
    /// [`WriteError::Remote`] for a URL of another scheme, without a bucket,
    /// with an invalid bucket name, or with empty or `.`/`..` key segments.
    pub fn parse(output: &Path) -> Result<Self, WriteError> {
        let Some(s) = output.to_str().filter(|s| is_url(s)) else {
            return Ok(Self::Dir(output.to_path_buf()));
        };
        let bad = |why: &str| WriteError::Remote {
            url: s.to_string(),
            what: super::PARSE_URL,
            source: why.to_string().into(),
        };
        let Some(rest) = s.strip_prefix("s3://") else {
            return Err(bad("only s3://BUCKET/PREFIX URLs are supported"));
        };
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(bad(
                "the bucket name must be 3-63 lower-case letters, digits, '-' or '.'",
            ));
        }
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(bad("the key prefix has an empty, '.' or '..' segment"));
        }
        Ok(Self::S3(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            Location::parse(Path::new("out.zarr")).unwrap(),
            Location::Dir("out.zarr".into())
        );
        assert_eq!(
            Location::parse(Path::new("/a/b:c.zarr")).unwrap(),
            Location::Dir("/a/b:c.zarr".into())
        );
        let Location::S3(u) = Location::parse(Path::new("s3://my-bucket/runs/r1.zarr/")).unwrap()
        else {
            panic!("not s3")
        };
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.prefix, "runs/r1.zarr");
        assert_eq!(u.to_string(), "s3://my-bucket/runs/r1.zarr");
        let Location::S3(u) = Location::parse(Path::new("s3://bkt")).unwrap() else {
            panic!("not s3")
        };
        assert_eq!(u.prefix, "");
        for bad in [
            "gs://b/x",
            "s3://",
            "s3://B/x",
            "s3://ab/x",
            "s3://bkt/a//b",
            "s3://bkt/a/../b",
        ] {
            assert!(Location::parse(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
