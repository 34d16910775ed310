//! An RPC method answered by an external command (`wavecast rpc serve --exec`, or any app that
//! lets a script answer calls): [`exec`] runs `sh -c CMD` per call with the payload on its stdin
//! and the call in its environment (`WAVECAST_RPC_METHOD`, `WAVECAST_RPC_CALLER`,
//! `WAVECAST_RPC_REQUEST_ID`); its stdout is the response, a non-zero exit an application error
//! (1500) with its stderr as the message, output over the payload limit 1504. The command runs in
//! a process group of its own, killed whole [`EXEC_SLACK`] after the caller stops waiting.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wavecast_session::{MAX_RPC_PAYLOAD_BYTES, RpcError, RpcErrorCode, RpcInvocationData};

/// A command's process group, killed (SIGKILL) when dropped unless the command ended by itself.
struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(id) = self.0.take().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(id),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How much longer than the caller waits a command may run: the caller times out first (and
/// reads 1502, response timeout) rather than racing the late answer.
pub const EXEC_SLACK: Duration = Duration::from_secs(2);

/// Most bytes of the command's stderr kept for the error message.
pub const MAX_STDERR: u64 = 4096;

/// Runs `sh -c cmd` for one call: the payload on its stdin, its stdout (at most
/// [`MAX_RPC_PAYLOAD_BYTES`]) the response; killed with everything it started
/// [`EXEC_SLACK`] after the caller stops waiting.
pub async fn exec(cmd: &str, method: &str, call: &RpcInvocationData) -> Result<String, RpcError> {
    let app_error =
        |message: String| RpcError::new(RpcErrorCode::ApplicationError as u32, message, None);
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WAVECAST_RPC_METHOD", method)
        .env("WAVECAST_RPC_CALLER", call.caller_identity.as_str())
        .env("WAVECAST_RPC_REQUEST_ID", &call.request_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: what it starts is killed with it, and the terminal's Ctrl-C
        // goes to `rpc serve` alone.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| app_error(format!("cannot run the command: {e}")))?;
    let mut group = ProcessGroup(child.id());
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let payload = call.payload.clone();
    let feed = async move {
        // A command that does not read its input is fine: a closed pipe is no error here.
        let _ = stdin.write_all(payload.as_bytes()).await;
        drop(stdin);
    };
    let run = async {
        let (_, out, err) = tokio::join!(
            feed,
            async {
                // One byte past the limit tells a response too large; then the command goes.
                let mut out = Vec::new();
                let _ = stdout
                    .take(MAX_RPC_PAYLOAD_BYTES as u64 + 1)
                    .read_to_end(&mut out)
                    .await;
                if out.len() > MAX_RPC_PAYLOAD_BYTES {
                    group.kill();
                }
                out
            },
            async {
                // Keep the start of stderr, drain the rest (a full pipe would stall the command).
                let mut err = Vec::new();
                let mut stderr = stderr;
                let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut err).await;
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
                err
            }
        );
        let status = child.wait().await;
        // The command ended by itself: nothing of its group is ours to kill any more.
        group.0 = None;
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(call.response_timeout + EXEC_SLACK, run)
        .await
        .map_err(|_| app_error("the command did not finish in time".into()))?;
    if out.len() > MAX_RPC_PAYLOAD_BYTES {
        return Err(RpcError::built_in(
            RpcErrorCode::ResponsePayloadTooLarge,
            None,
        ));
    }
    let status = status.map_err(|e| app_error(format!("the command failed: {e}")))?;
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err).trim().to_owned();
        return Err(app_error(if stderr.is_empty() {
            format!("the command failed ({status})")
        } else {
            stderr
        }));
    }
    String::from_utf8(out).map_err(|_| app_error("the command's output is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(payload: &str, timeout: Duration) -> RpcInvocationData {
        RpcInvocationData {
            request_id: "req-1".into(),
            caller_identity: "ada".into(),
            payload: payload.into(),
            response_timeout: timeout,
        }
    }

    #[tokio::test]
    async fn exec_answers_with_stdout_and_fails_with_stderr() {
        let c = call("hello", Duration::from_secs(10));
        let env = r#"cat; printf ' %s %s %s' "$WAVECAST_RPC_METHOD" "$WAVECAST_RPC_CALLER" "$WAVECAST_RPC_REQUEST_ID""#;
        assert_eq!(exec(env, "m", &c).await.unwrap(), "hello m ada req-1");
        let e = exec("echo nope >&2; exit 4", "m", &c).await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (1500, "nope"));
        let e = exec("exit 4", "m", &c).await.unwrap_err();
        assert!(e.message.contains("exit status: 4"), "{e}");
        // A command that ignores its input is fine.
        assert_eq!(exec("printf ok", "m", &c).await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn exec_output_is_bounded() {
        let c = call("", Duration::from_secs(10));
        // Endless output: cut at the limit, the command killed, 1504.
        let e = exec("yes", "m", &c).await.unwrap_err();
        assert_eq!(e.code, RpcErrorCode::ResponsePayloadTooLarge as u32);
        let e = exec(r"printf '\377\376'", "m", &c).await.unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (1500, "the command's output is not UTF-8")
        );
        // Endless stderr does not stall a command that fails.
        let e = exec("yes err >&2 & sleep 0.2; kill $!; exit 1", "m", &c)
            .await
            .unwrap_err();
        assert_eq!(e.code, 1500);
        assert!(
            e.message.len() <= RpcError::MAX_MESSAGE_BYTES,
            "{}",
            e.message.len()
        );
    }

    #[tokio::test]
    async fn a_command_past_the_callers_wait_is_killed_with_what_it_started() {
        let c = call("", Duration::from_millis(100));
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A shell that stays (two commands) with a child of its own.
        let cmd = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let started = std::time::Instant::now();
        let e = exec(&cmd, "m", &c).await.unwrap_err();
        assert_eq!(e.message, "the command did not finish in time");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Gone (or a zombie on its way out): signal 0 fails, or /proc says Z.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive || state.contains(") Z") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} outlived the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
