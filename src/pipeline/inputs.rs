//! Input file lists: paths, globs (expanded here, not by the shell) and
//! `--file-list` files, merged into one naturally sorted list without
//! duplicates.
//!
//! Rank 0 expands the list once and broadcasts it, so a glob over thousands
//! of files costs one directory scan, not one per rank.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::cli::error::ConfigError;

/// Whether `s` contains glob metacharacters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands `specs` (paths and globs) and the lines of `file_list`, then sorts
/// naturally and removes duplicates.
///
/// A path without glob characters is kept as given (a missing file is
/// reported later, with its name, when it is opened); a glob that matches
/// nothing is an error.
///
/// # Errors
/// [`ConfigError::Glob`], [`ConfigError::NoMatch`], [`ConfigError::FileList`]
/// or [`ConfigError::NoInputs`].
pub fn expand(specs: &[String], file_list: Option<&Path>) -> Result<Vec<PathBuf>, ConfigError> {
    let mut all: Vec<String> = specs.to_vec();
    if let Some(list) = file_list {
        let text = std::fs::read_to_string(list).map_err(|source| ConfigError::FileList {
            path: list.to_path_buf(),
            source,
        })?;
        let base = list.parent().unwrap_or(Path::new(""));
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Relative entries are relative to the list's directory.
            let p = Path::new(line);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            all.push(p.to_string_lossy().into_owned());
        }
    }
    let mut out = Vec::new();
    for spec in &all {
        if is_glob(spec) {
            let paths = glob::glob(spec).map_err(|e| ConfigError::Glob {
                pattern: spec.clone(),
                msg: e.to_string(),
            })?;
            let mut n = 0;
            for p in paths {
                let p = p.map_err(|e| ConfigError::Glob {
                    pattern: spec.clone(),
                    msg: e.to_string(),
                })?;
                if p.is_file() {
                    out.push(p);
                    n += 1;
                }
            }
            if n == 0 {
                return Err(ConfigError::NoMatch(spec.clone()));
            }
        } else {
            out.push(PathBuf::from(spec));
        }
    }
    if out.is_empty() {
        return Err(ConfigError::NoInputs);
    }
    sort_natural(&mut out);
    Ok(out)
}

/// Sorts paths naturally (`f2.nc` before `f10.nc`) and removes duplicates.
pub fn sort_natural(paths: &mut Vec<PathBuf>) {
    paths.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    paths.dedup();
}

/// Natural order: runs of digits compare by value, other text by bytes.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&a[si..i]);
            let nb = trim_zeros(&b[sj..j]);
            let ord = na
                .len()
                .cmp(&nb.len())
                .then_with(|| na.cmp(nb))
                // Equal values: fewer leading zeros first, for a total order.
                .then_with(|| (i - si).cmp(&(j - sj)));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[k..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v: Vec<PathBuf> = ["f10.nc", "f2.nc", "f1.nc", "f02.nc", "a/f1.nc", "f2.nc"]
            .iter()
            .map(PathBuf::from)
            .collect();
        sort_natural(&mut v);
        let s: Vec<String> = v.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(s, ["a/f1.nc", "f1.nc", "f2.nc", "f02.nc", "f10.nc"]);
        assert_eq!(
            natural_cmp("era_2026-11-9", "era_2026-11-10"),
            Ordering::Less
        );
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }

    #[test]
    fn globs_expand_and_empty_globs_fail() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["d10.nc", "d9.nc", "d1.nc", "other.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let pat = format!("{}/d*.nc", dir.path().display());
        let got = expand(&[pat], None).unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["d1.nc", "d9.nc", "d10.nc"]);
        let none = format!("{}/zz*.nc", dir.path().display());
        assert!(matches!(
            expand(&[none], None),
            Err(ConfigError::NoMatch(_))
        ));
        let list = dir.path().join("files.txt");
        std::fs::write(&list, "# inputs\nd9.nc\n\nd1.nc\n").unwrap();
        let got = expand(&[], Some(&list)).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with("d1.nc"));
    }
}
