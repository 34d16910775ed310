//! A small tmpfs mounted on a test's directory: a file system that really fills up (for "the
//! disk is full" tests) without touching the machine's disk. Mounting needs root, as network
//! namespaces do: a test that cannot mount fails naming why, or is skipped when [`SKIP_ENV`]
//! is `1`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set to `1` to skip the tests that need a tmpfs where mounting is impossible.
pub const SKIP_ENV: &str = "WAVECAST_SKIP_MOUNT";

/// A tmpfs of a fixed size mounted on a directory; unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount `size` bytes of tmpfs on `dir` (created). `Err` names why it could not be.
    pub fn mount(dir: &Path, size: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (uid {}): {}",
                uid(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// [`Tmpfs::mount`] for the test named `test`: `None` (after a `SKIPPED` line) when it
    /// cannot be mounted and [`SKIP_ENV`] is `1`.
    ///
    /// # Panics
    /// When it cannot be mounted and the skip is not asked for: the test fails naming why.
    pub fn mount_for(test: &str, dir: &Path, size: u64) -> Option<Tmpfs> {
        match Tmpfs::mount(dir, size) {
            Ok(t) => Some(t),
            Err(e) if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") => {
                eprintln!("SKIPPED {test} ({SKIP_ENV}=1): {e}");
                None
            }
            Err(e) => panic!(
                "{test}: a full disk needs a small tmpfs: {e} (run as root, or set {SKIP_ENV}=1 \
                 to skip)"
            ),
        }
    }
}

fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
