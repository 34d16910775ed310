//! Joining: the signal connection attempt, its errors, and the local address to use.

use super::*;

/// The server echoes the token in some refusals: never let it reach logs or error messages.
pub(super) fn redact_token(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_owned()
    } else {
        message.replace(token, "<token>")
    }
}

pub(super) fn classify_connect_error(url: &str, token: &str, source: SignalError) -> EngineError {
    match &source {
        SignalError::Client(status, message)
            if status.as_u16() == 401 || status.as_u16() == 403 =>
        {
            EngineError::Unauthorized {
                url: url.to_owned(),
                status: status.as_u16(),
                message: redact_token(message, token),
            }
        }
        SignalError::Client(status, message) => EngineError::Connect {
            url: url.to_owned(),
            source: SignalError::Client(*status, redact_token(message, token)),
        },
        _ => EngineError::Connect {
            url: url.to_owned(),
            source,
        },
    }
}

/// The local address the OS would use to reach the signal URL's host (no packet is sent).
pub(super) async fn local_ip_towards(url: &str) -> IpAddr {
    let fallback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Some(rest) = url.split("://").nth(1) else {
        return fallback;
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:443")
    };
    let Ok(mut addrs) = tokio::net::lookup_host(with_port).await else {
        return fallback;
    };
    let Some(remote) = addrs.next() else {
        return fallback;
    };
    if remote.ip().is_loopback() {
        return remote.ip();
    }
    let bind: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid literal")
    } else {
        "[::]:0".parse().expect("valid literal")
    };
    match std::net::UdpSocket::bind(bind).and_then(|s| {
        s.connect(remote)?;
        s.local_addr()
    }) {
        Ok(a) => a.ip(),
        Err(_) => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_never_carry_the_token() {
        let token = "eyJhbGciOi.secretpart.sig";
        let msg = format!("invalid token: {token}, error: signature is invalid");
        let e = classify_connect_error("ws://h", token, SignalError::Client(http_status(401), msg));
        let text = format!("{e} {e:?}");
        assert!(!text.contains("secretpart"), "{text}");
        assert!(matches!(e, EngineError::Unauthorized { status: 401, .. }));
        assert!(!e.is_retryable());
    }

    fn http_status(code: u16) -> http::StatusCode {
        http::StatusCode::from_u16(code).expect("valid status")
    }
}
