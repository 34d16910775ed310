//! The hot paths take no locks: no `Mutex`, `RwLock` or `Condvar` anywhere in the crate's
//! sources (hand-offs are crossbeam `ArrayQueue`, `ringbuf` and atomics only).

use std::path::Path;

#[test]
fn crate_sources_use_no_locks() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        // The model-checking stand-in for crossbeam's queue; built only under `cfg(loom)`.
        if path.file_name().is_some_and(|n| n == "loom_queue.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for lock in ["Mutex", "RwLock", "Condvar", "parking_lot"] {
                assert!(
                    !code.contains(lock),
                    "{}:{}: `{lock}` on a pipeline path: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 8,
        "expected the crate's modules, found {checked}"
    );
}
