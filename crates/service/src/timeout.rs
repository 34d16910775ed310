//! The `408` of a connection whose request headers did not arrive within
//! [`crate::Bounds::header_timeout`].
//!
//! hyper enforces that timeout itself but answers nothing: in hyper 1.x
//! (`proto/h1/conn.rs`, `Conn::poll_read_head`) the expired timer returns
//! `Error::new_header_timeout()` straight out of the connection, and the automatic error
//! answers of its server role (`proto/h1/role.rs`, `Server::on_error`) cover parse errors only
//! (400, 414, 431). The connection future ends with that error but does not shut the socket
//! down, so [`crate::Service::serve`] takes the socket back (`Connection::into_parts`) and
//! writes the answer here: `408 request_timeout` with `Connection: close`, then a half-close,
//! then it reads what the client still sends (bounded) so that closing does not reset the
//! connection under the answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest time spent writing the answer and then draining the client.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read (and discarded) from the client after the answer.
const LINGER_BYTES: usize = 64 * 1024;

/// The answer's bytes: `partial` when part of a request head had arrived (else the connection
/// was idle: nothing since it opened or since the last answer).
fn answer(partial: bool, header_timeout: Duration) -> Vec<u8> {
    let within = humantime::format_duration(header_timeout);
    let message = if partial {
        format!("the request headers did not arrive within {within}")
    } else {
        format!("no request within {within}; the idle connection is closed")
    };
    let body = serde_json::json!({"error": "request_timeout", "message": message}).to_string();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Write the 408 to `stream`, half-close it and drain the client for at most [`LINGER`].
pub(crate) async fn answer_408(mut stream: TcpStream, partial: bool, header_timeout: Duration) {
    tracing::debug!(partial, "request headers timed out: 408");
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(&answer(partial, header_timeout)).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_a_complete_408_with_its_length() {
        for partial in [true, false] {
            let a = String::from_utf8(answer(partial, Duration::from_secs(2))).unwrap();
            let (head, body) = a.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
                "{head}"
            );
            assert!(head.contains("\r\nconnection: close"), "{head}");
            assert!(
                head.contains(&format!("\r\ncontent-length: {}", body.len())),
                "{head}"
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"], "request_timeout");
            assert!(v["message"].as_str().unwrap().contains("2s"), "{v}");
        }
    }
}
