//! The stats file every app can write (`--stats FILE`): pretty JSON of any serde value.

use std::path::Path;

use serde::Serialize;

use crate::AppError;

/// Writes `stats` as pretty JSON to `path` (replacing it), and logs where.
///
/// # Errors
/// [`AppError::Json`] when serialisation fails, [`AppError::Io`] when the file cannot be written.
pub fn write_stats<T: Serialize>(path: &Path, stats: &T) -> Result<(), AppError> {
    let json = serde_json::to_string_pretty(stats).map_err(|source| AppError::Json {
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(path, json).map_err(|source| AppError::Io {
        path: path.to_owned(),
        source,
    })?;
    tracing::info!("stats written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pretty_json_and_names_a_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        #[derive(Serialize)]
        struct S {
            frames: u64,
        }
        write_stats(&path, &S { frames: 3 }).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["frames"], 3);
        let bad = dir.path().join("no/such/dir/stats.json");
        let e = write_stats(&bad, &S { frames: 1 }).unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}
