//! RPC between participants, with the official SDKs' semantics, in both protocol versions:
//! v1 sends request, ack and response packets on the reliable data channel; v2 (to
//! participants whose client protocol is [`ClientProtocol::DataStreamRpc`] or newer) sends the
//! request's and the successful response's payload as text streams (`lk.rpc_request`,
//! `lk.rpc_response`), so payloads have no size limit, while acks and errors stay packets. A
//! call goes the newest way the receiver reads; a response the newest way the caller reads.
//!
//! The caller ([`crate::LocalParticipant::perform_rpc`]) sends a request to one participant and
//! waits for its ack within the round-trip bound (else [`RpcErrorCode::ConnectionTimeout`]),
//! then for the response within the response timeout (else
//! [`RpcErrorCode::ResponseTimeout`]); a recipient that leaves meanwhile gives
//! [`RpcErrorCode::RecipientDisconnected`]. Payloads over [`MAX_RPC_PAYLOAD_BYTES`] are refused
//! to a v1 receiver before sending ([`RpcErrorCode::RequestPayloadTooLarge`]).
//!
//! The receiver ([`crate::LocalParticipant::register_rpc_method`]) acks every request at once,
//! answers an unknown method with [`RpcErrorCode::UnsupportedMethod`], another protocol
//! version with [`RpcErrorCode::UnsupportedVersion`], a handler that panics with
//! [`RpcErrorCode::ApplicationError`], and a response over the limit to a v1 caller with
//! [`RpcErrorCode::ResponsePayloadTooLarge`]; an [`RpcError`] the handler returns reaches the
//! caller as it is (code, message, data).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, warn};
use wavecast_rtc::data_message::{
    DataMessage, RpcAck, RpcErrorInfo, RpcOutcome, RpcRequest, RpcResponse,
};

use super::data_stream::{StreamTextOptions, TextStreamReader};
use crate::ids::ParticipantIdentity;
use crate::session::{Session, lock};
use wavecast_rtc::ClientProtocol;

/// Largest request or response payload, in bytes (15 KiB, as the SDKs).
pub const MAX_RPC_PAYLOAD_BYTES: usize = 15 * 1024;

/// How long a request may take to reach the receiver and its ack to come back (the SDKs' 7 s).
pub const DEFAULT_MAX_ROUND_TRIP_LATENCY: Duration = Duration::from_secs(7);

/// The shortest response timeout a request announces to its receiver.
const MIN_EFFECTIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The version a v1 request (a packet) carries.
const RPC_VERSION_V1: u32 = 1;

/// The version a v2 request (a text stream) carries in its attributes.
const RPC_VERSION_V2: u32 = 2;

/// The topic of v2 requests' text streams.
pub(crate) const TOPIC_RPC_REQUEST: &str = "lk.rpc_request";

/// The topic of v2 responses' text streams.
pub(crate) const TOPIC_RPC_RESPONSE: &str = "lk.rpc_response";

/// The stream attributes of a v2 request (the response stream carries the id only).
const ATTR_REQUEST_ID: &str = "lk.rpc_request_id";
const ATTR_METHOD: &str = "lk.rpc_request_method";
const ATTR_RESPONSE_TIMEOUT_MS: &str = "lk.rpc_request_response_timeout_ms";
const ATTR_VERSION: &str = "lk.rpc_request_version";

/// The SDKs' built-in error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RpcErrorCode {
    /// The handler failed without an [`RpcError`] of its own (it panicked).
    ApplicationError = 1500,
    /// No ack within the round-trip bound (the receiver is gone or unreachable).
    ConnectionTimeout = 1501,
    /// Acked, but no response within the response timeout.
    ResponseTimeout = 1502,
    /// The receiver left before answering.
    RecipientDisconnected = 1503,
    /// The handler's response is over [`MAX_RPC_PAYLOAD_BYTES`].
    ResponsePayloadTooLarge = 1504,
    /// The request could not be sent.
    SendFailed = 1505,
    /// No handler for the method at the receiver.
    UnsupportedMethod = 1400,
    /// No such participant.
    RecipientNotFound = 1401,
    /// The request's payload is over [`MAX_RPC_PAYLOAD_BYTES`].
    RequestPayloadTooLarge = 1402,
    /// The server is too old for RPC.
    UnsupportedServer = 1403,
    /// The other side speaks another RPC version.
    UnsupportedVersion = 1404,
}

impl RpcErrorCode {
    /// The SDKs' message for the code.
    pub fn message(self) -> &'static str {
        match self {
            Self::ApplicationError => "Application error in method handler",
            Self::ConnectionTimeout => "Connection timeout",
            Self::ResponseTimeout => "Response timeout",
            Self::RecipientDisconnected => "Recipient disconnected",
            Self::ResponsePayloadTooLarge => "Response payload too large",
            Self::SendFailed => "Failed to send",
            Self::UnsupportedMethod => "Method not supported at destination",
            Self::RecipientNotFound => "Recipient not found",
            Self::RequestPayloadTooLarge => "Request payload too large",
            Self::UnsupportedServer => "RPC not supported by server",
            Self::UnsupportedVersion => "Unsupported RPC version",
        }
    }

    /// The built-in code with this number, if it is one.
    pub fn from_code(code: u32) -> Option<Self> {
        const ALL: [RpcErrorCode; 11] = [
            RpcErrorCode::ApplicationError,
            RpcErrorCode::ConnectionTimeout,
            RpcErrorCode::ResponseTimeout,
            RpcErrorCode::RecipientDisconnected,
            RpcErrorCode::ResponsePayloadTooLarge,
            RpcErrorCode::SendFailed,
            RpcErrorCode::UnsupportedMethod,
            RpcErrorCode::RecipientNotFound,
            RpcErrorCode::RequestPayloadTooLarge,
            RpcErrorCode::UnsupportedServer,
            RpcErrorCode::UnsupportedVersion,
        ];
        ALL.into_iter().find(|c| *c as u32 == code)
    }
}

/// An RPC failure: a code (the built-ins of [`RpcErrorCode`], or the application's own), a
/// message (at most 256 bytes) and optional data (at most [`MAX_RPC_PAYLOAD_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RPC error {code}: {message}")]
pub struct RpcError {
    /// The code.
    pub code: u32,
    /// The message.
    pub message: String,
    /// Extra data.
    pub data: Option<String>,
}

impl RpcError {
    /// Longest message, in bytes.
    pub const MAX_MESSAGE_BYTES: usize = 256;

    /// An error with the application's code, message and data (cut to their limits).
    pub fn new(code: u32, message: impl Into<String>, data: Option<String>) -> Self {
        Self {
            code,
            message: truncate(&message.into(), Self::MAX_MESSAGE_BYTES),
            data: data.map(|d| truncate(&d, MAX_RPC_PAYLOAD_BYTES)),
        }
    }

    /// A built-in error with the SDKs' message.
    pub fn built_in(code: RpcErrorCode, data: Option<String>) -> Self {
        Self::new(code as u32, code.message(), data)
    }

    /// The built-in code, if it is one.
    pub fn built_in_code(&self) -> Option<RpcErrorCode> {
        RpcErrorCode::from_code(self.code)
    }

    fn from_info(e: RpcErrorInfo) -> Self {
        Self::new(e.code, e.message, (!e.data.is_empty()).then_some(e.data))
    }

    fn to_info(&self) -> RpcErrorInfo {
        RpcErrorInfo {
            code: self.code,
            message: self.message.clone(),
            data: self.data.clone().unwrap_or_default(),
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_owned()
}

/// What a method handler is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcInvocationData {
    /// The request's id (the same on both sides).
    pub request_id: String,
    /// Who called.
    pub caller_identity: ParticipantIdentity,
    /// The request's payload.
    pub payload: String,
    /// How long the caller waits for the response.
    pub response_timeout: Duration,
}

/// A call to make ([`crate::LocalParticipant::perform_rpc_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerformRpcData {
    /// The receiver.
    pub destination_identity: String,
    /// The method.
    pub method: String,
    /// The payload (at most [`MAX_RPC_PAYLOAD_BYTES`]).
    pub payload: String,
    /// How long to wait for the response once acked (default 15 s).
    pub response_timeout: Duration,
    /// How long to wait for the ack (default [`DEFAULT_MAX_ROUND_TRIP_LATENCY`]).
    pub max_round_trip_latency: Duration,
}

impl Default for PerformRpcData {
    fn default() -> Self {
        Self {
            destination_identity: String::new(),
            method: String::new(),
            payload: String::new(),
            response_timeout: Duration::from_secs(15),
            max_round_trip_latency: DEFAULT_MAX_ROUND_TRIP_LATENCY,
        }
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<String, RpcError>> + Send>>;
type Handler = Arc<dyn Fn(RpcInvocationData) -> HandlerFuture + Send + Sync>;

struct Pending {
    destination: String,
    ack: Option<oneshot::Sender<()>>,
    response: Option<oneshot::Sender<Result<String, RpcError>>>,
}

/// Calls in flight and method handlers, shared by the local participant and the room's task.
#[derive(Default)]
pub(crate) struct Rpc {
    handlers: Mutex<HashMap<String, Handler>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// Requests being answered now (bounded by [`MAX_REQUESTS_IN_PROGRESS`]).
    in_progress: std::sync::atomic::AtomicUsize,
}

/// A request in progress; leaves when dropped.
struct InProgress<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Requests answered at once; past it a request is acked and answered with
/// [`RpcErrorCode::ApplicationError`] at once, so a peer flooding us with calls to a slow
/// method cannot make us hold any number of handler tasks.
pub const MAX_REQUESTS_IN_PROGRESS: usize = 256;

impl Rpc {
    pub(crate) fn register<F, Fut>(&self, method: &str, handler: F)
    where
        F: Fn(RpcInvocationData) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, RpcError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |data| Box::pin(handler(data)));
        lock(&self.handlers).insert(method.to_owned(), handler);
    }

    pub(crate) fn unregister(&self, method: &str) {
        lock(&self.handlers).remove(method);
    }

    /// Make a call (see the module docs) to a receiver that speaks `receiver`.
    pub(crate) async fn perform(
        &self,
        session: &Arc<Session>,
        call: PerformRpcData,
        receiver: ClientProtocol,
    ) -> Result<String, RpcError> {
        let v2 = receiver >= ClientProtocol::DataStreamRpc;
        if !v2 && call.payload.len() > MAX_RPC_PAYLOAD_BYTES {
            return Err(RpcError::built_in(
                RpcErrorCode::RequestPayloadTooLarge,
                None,
            ));
        }
        let id = super::data_stream::random_id();
        let (ack_tx, ack_rx) = oneshot::channel();
        let (resp_tx, resp_rx) = oneshot::channel();
        // Registered before sending: the answer may come before the send returns.
        lock(&self.pending).insert(
            id.clone(),
            Pending {
                destination: call.destination_identity.clone(),
                ack: Some(ack_tx),
                response: Some(resp_tx),
            },
        );
        let announced = call
            .response_timeout
            .saturating_sub(call.max_round_trip_latency)
            .max(MIN_EFFECTIVE_TIMEOUT);
        let announced_ms = announced.as_millis().min(u128::from(u32::MAX)) as u32;
        let sent = if v2 {
            let options = StreamTextOptions {
                topic: TOPIC_RPC_REQUEST.into(),
                attributes: HashMap::from([
                    (ATTR_REQUEST_ID.to_owned(), id.clone()),
                    (ATTR_METHOD.to_owned(), call.method),
                    (
                        ATTR_RESPONSE_TIMEOUT_MS.to_owned(),
                        announced_ms.to_string(),
                    ),
                    (ATTR_VERSION.to_owned(), RPC_VERSION_V2.to_string()),
                ]),
                destination_identities: vec![call.destination_identity.as_str().into()],
                ..StreamTextOptions::default()
            };
            let single_packet = receiver >= ClientProtocol::DataStreamV2;
            super::data_stream::send_text(session.clone(), &call.payload, options, single_packet)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            let request = DataMessage::RpcRequest(RpcRequest {
                id: id.clone(),
                method: call.method,
                payload: call.payload,
                response_timeout_ms: announced_ms,
                version: RPC_VERSION_V1,
                compressed_payload: Vec::new(),
            });
            session
                .send_data_message(request, vec![call.destination_identity])
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = sent {
            lock(&self.pending).remove(&id);
            return Err(RpcError::built_in(RpcErrorCode::SendFailed, Some(e)));
        }
        let forget = |this: &Self| {
            lock(&this.pending).remove(&id);
        };
        match tokio::time::timeout(call.max_round_trip_latency, ack_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                // Dropped unanswered: the recipient left.
                forget(self);
                return Err(RpcError::built_in(
                    RpcErrorCode::RecipientDisconnected,
                    None,
                ));
            }
            Err(_) => {
                forget(self);
                return Err(RpcError::built_in(RpcErrorCode::ConnectionTimeout, None));
            }
        }
        match tokio::time::timeout(call.response_timeout, resp_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                forget(self);
                Err(RpcError::built_in(
                    RpcErrorCode::RecipientDisconnected,
                    None,
                ))
            }
            Err(_) => {
                forget(self);
                Err(RpcError::built_in(RpcErrorCode::ResponseTimeout, None))
            }
        }
    }

    /// An ack for one of our calls.
    pub(crate) fn on_ack(&self, ack: RpcAck) {
        let mut pending = lock(&self.pending);
        match pending.get_mut(&ack.request_id).and_then(|p| p.ack.take()) {
            Some(tx) => {
                let _ = tx.send(());
            }
            None => debug!("RPC ack for no call of ours: {}", ack.request_id),
        }
    }

    /// A response packet to one of our calls.
    pub(crate) fn on_response(&self, r: RpcResponse) {
        let result = match r.outcome {
            Some(RpcOutcome::Payload(p)) => Ok(p),
            None => Ok(String::new()),
            Some(RpcOutcome::Error(e)) => Err(RpcError::from_info(e)),
            Some(RpcOutcome::CompressedPayload(_)) => Err(RpcError::built_in(
                RpcErrorCode::UnsupportedVersion,
                Some("compressed payloads are not supported".into()),
            )),
        };
        self.settle(&r.request_id, None, result);
    }

    /// A v2 response stream from `from`: its payload (read whole, within the data-stream
    /// limits) answers the call its attributes name.
    pub(crate) async fn on_response_stream(
        &self,
        from: ParticipantIdentity,
        reader: TextStreamReader,
    ) {
        let Some(id) = reader.info().attributes.get(ATTR_REQUEST_ID).cloned() else {
            warn!("RPC response stream from {from} names no request");
            return;
        };
        let result = reader.read_all().await.map_err(|e| {
            RpcError::built_in(
                RpcErrorCode::ApplicationError,
                Some(format!("reading the response failed: {e}")),
            )
        });
        self.settle(&id, Some(&from), result);
    }

    /// End the call `id` with `result` (if `from` is given, only if the call went to it).
    fn settle(
        &self,
        id: &str,
        from: Option<&ParticipantIdentity>,
        result: Result<String, RpcError>,
    ) {
        let mut pending = lock(&self.pending);
        match (pending.get(id), from) {
            (None, _) => {
                debug!("RPC response for no call of ours: {id}");
                return;
            }
            (Some(p), Some(from)) if p.destination != from.as_str() => {
                warn!(
                    "RPC response to {id} from {from}, not from {}: ignored",
                    p.destination
                );
                return;
            }
            _ => {}
        }
        let Some(mut p) = pending.remove(id) else {
            return;
        };
        drop(pending);
        // A response implies the ack: a caller still waiting for the ack goes on.
        if let Some(tx) = p.ack.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = p.response.take() {
            let _ = tx.send(result);
        }
    }

    /// The participant left: its calls end with [`RpcErrorCode::RecipientDisconnected`].
    pub(crate) fn participant_left(&self, identity: &str) {
        let mut pending = lock(&self.pending);
        for p in pending.values_mut().filter(|p| p.destination == identity) {
            p.ack.take();
            if let Some(tx) = p.response.take() {
                let _ = tx.send(Err(RpcError::built_in(
                    RpcErrorCode::RecipientDisconnected,
                    None,
                )));
            }
        }
        pending.retain(|_, p| p.destination != identity);
    }

    /// Answer a v1 request (spawned by the room's task) from a caller that speaks `caller_protocol`:
    /// ack at once, run the handler, respond.
    pub(crate) async fn serve(
        self: Arc<Self>,
        session: Arc<Session>,
        caller: ParticipantIdentity,
        request: RpcRequest,
        caller_protocol: ClientProtocol,
    ) {
        ack(&session, &caller, &request.id).await;
        let result = if request.version != RPC_VERSION_V1 {
            Err(RpcError::built_in(RpcErrorCode::UnsupportedVersion, None))
        } else {
            let response_timeout = Duration::from_millis(u64::from(request.response_timeout_ms));
            self.invoke(
                &caller,
                &request.id,
                &request.method,
                request.payload,
                response_timeout,
            )
            .await
        };
        respond(&session, &caller, &request.id, result, caller_protocol).await;
    }

    /// Answer a v2 request: a text stream on `lk.rpc_request` whose attributes name the call.
    pub(crate) async fn serve_stream(
        self: Arc<Self>,
        session: Arc<Session>,
        caller: ParticipantIdentity,
        reader: TextStreamReader,
        caller_protocol: ClientProtocol,
    ) {
        let attributes = &reader.info().attributes;
        let (Some(id), Some(method)) = (
            attributes.get(ATTR_REQUEST_ID).cloned(),
            attributes.get(ATTR_METHOD).cloned(),
        ) else {
            warn!("RPC request stream from {caller} without an id or a method: ignored");
            return;
        };
        let timeout_ms = attributes
            .get(ATTR_RESPONSE_TIMEOUT_MS)
            .and_then(|t| t.parse::<u64>().ok());
        let version = attributes
            .get(ATTR_VERSION)
            .and_then(|v| v.parse::<u32>().ok());
        ack(&session, &caller, &id).await;
        let result = match (version, timeout_ms) {
            (Some(RPC_VERSION_V2), Some(ms)) => match reader.read_all().await {
                Ok(payload) => {
                    self.invoke(&caller, &id, &method, payload, Duration::from_millis(ms))
                        .await
                }
                Err(e) => Err(RpcError::built_in(
                    RpcErrorCode::ApplicationError,
                    Some(format!("reading the request failed: {e}")),
                )),
            },
            (Some(RPC_VERSION_V2), None) => Err(RpcError::built_in(
                RpcErrorCode::ApplicationError,
                Some("the request stream has no valid response timeout".into()),
            )),
            _ => Err(RpcError::built_in(RpcErrorCode::UnsupportedVersion, None)),
        };
        respond(&session, &caller, &id, result, caller_protocol).await;
    }

    /// A place among the requests in progress (`None` at the bound); freed when dropped.
    fn enter(&self) -> Option<InProgress<'_>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.in_progress
            .fetch_update(Relaxed, Relaxed, |n| {
                (n < MAX_REQUESTS_IN_PROGRESS).then_some(n + 1)
            })
            .ok()
            .map(|_| InProgress(&self.in_progress))
    }

    /// Run the handler of `method` for a call (within the bound on requests in progress), or
    /// say which built-in error applies.
    pub(crate) async fn invoke(
        &self,
        caller: &ParticipantIdentity,
        request_id: &str,
        method: &str,
        payload: String,
        response_timeout: Duration,
    ) -> Result<String, RpcError> {
        let Some(_place) = self.enter() else {
            warn!("RPC request {request_id} from {caller} refused: too many in progress");
            return Err(RpcError::built_in(
                RpcErrorCode::ApplicationError,
                Some("too many requests in progress".into()),
            ));
        };
        let Some(handler) = lock(&self.handlers).get(method).cloned() else {
            return Err(RpcError::built_in(RpcErrorCode::UnsupportedMethod, None));
        };
        let data = RpcInvocationData {
            request_id: request_id.to_owned(),
            caller_identity: caller.clone(),
            payload,
            response_timeout,
        };
        // On a task of its own: a panicking handler is an application error, not ours.
        match tokio::spawn(handler(data)).await {
            Ok(r) => r,
            Err(e) => {
                warn!("RPC handler for {method:?} failed: {e}");
                Err(RpcError::built_in(RpcErrorCode::ApplicationError, None))
            }
        }
    }
}

/// Ack a request at once (the caller's round-trip bound runs until it arrives).
async fn ack(session: &Session, caller: &ParticipantIdentity, request_id: &str) {
    let ack = DataMessage::RpcAck(RpcAck {
        request_id: request_id.to_owned(),
    });
    if let Err(e) = session
        .send_data_message(ack, vec![caller.to_string()])
        .await
    {
        warn!("could not ack RPC request {request_id} from {caller}: {e}");
    }
}

/// What a v1 response packet says of `result`: the payload, or the error (a payload over the
/// v1 limit becomes [`RpcErrorCode::ResponsePayloadTooLarge`]).
fn packet_outcome(result: Result<String, RpcError>) -> RpcOutcome {
    match result {
        Ok(p) if p.len() <= MAX_RPC_PAYLOAD_BYTES => RpcOutcome::Payload(p),
        Ok(_) => RpcOutcome::Error(
            RpcError::built_in(RpcErrorCode::ResponsePayloadTooLarge, None).to_info(),
        ),
        Err(e) => RpcOutcome::Error(e.to_info()),
    }
}

/// Send `result` to the caller: a payload as a response stream if the caller reads them (v2),
/// else (and errors always) as a response packet.
async fn respond(
    session: &Arc<Session>,
    caller: &ParticipantIdentity,
    request_id: &str,
    result: Result<String, RpcError>,
    caller_protocol: ClientProtocol,
) {
    let result = match result {
        Ok(payload) if caller_protocol >= ClientProtocol::DataStreamRpc => {
            let options = StreamTextOptions {
                topic: TOPIC_RPC_RESPONSE.into(),
                attributes: HashMap::from([(ATTR_REQUEST_ID.to_owned(), request_id.to_owned())]),
                destination_identities: vec![caller.clone()],
                ..StreamTextOptions::default()
            };
            let single_packet = caller_protocol >= ClientProtocol::DataStreamV2;
            match super::data_stream::send_text(session.clone(), &payload, options, single_packet)
                .await
            {
                Ok(_) => return,
                Err(e) => Err(RpcError::built_in(
                    RpcErrorCode::SendFailed,
                    Some(e.to_string()),
                )),
            }
        }
        other => other,
    };
    let response = DataMessage::RpcResponse(RpcResponse {
        request_id: request_id.to_owned(),
        outcome: Some(packet_outcome(result)),
    });
    if let Err(e) = session
        .send_data_message(response, vec![caller.to_string()])
        .await
    {
        warn!("could not answer RPC request {request_id} from {caller}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a v1 caller is answered (the response packet's outcome), as `serve` decides it.
    async fn answer(rpc: &Rpc, caller: ParticipantIdentity, r: RpcRequest) -> RpcOutcome {
        let result = if r.version != RPC_VERSION_V1 {
            Err(RpcError::built_in(RpcErrorCode::UnsupportedVersion, None))
        } else {
            let timeout = Duration::from_millis(u64::from(r.response_timeout_ms));
            rpc.invoke(&caller, &r.id, &r.method, r.payload, timeout)
                .await
        };
        packet_outcome(result)
    }

    #[test]
    fn codes_and_limits_are_the_sdks() {
        assert_eq!(RpcErrorCode::ApplicationError as u32, 1500);
        assert_eq!(RpcErrorCode::UnsupportedVersion as u32, 1404);
        for code in 1400..1600 {
            if let Some(c) = RpcErrorCode::from_code(code) {
                assert_eq!(c as u32, code);
            }
        }
        assert_eq!(RpcErrorCode::from_code(1506), None);
        let e = RpcError::new(42, "é".repeat(200), Some("x".repeat(20_000)));
        assert!(e.message.len() <= 256 && e.message.chars().all(|c| c == 'é'));
        assert_eq!(
            e.data.as_ref().map(String::len),
            Some(MAX_RPC_PAYLOAD_BYTES)
        );
        assert_eq!(RpcError::from_info(e.to_info()), e);
        let b = RpcError::built_in(RpcErrorCode::UnsupportedMethod, None);
        assert_eq!(b.built_in_code(), Some(RpcErrorCode::UnsupportedMethod));
        assert_eq!(
            b.to_string(),
            "RPC error 1400: Method not supported at destination"
        );
    }

    #[tokio::test]
    async fn the_receiver_answers_each_case_with_the_sdks_code() {
        let rpc = Rpc::default();
        rpc.register("echo", |c| async move { Ok(c.payload) });
        rpc.register("who", |c| async move { Ok(c.caller_identity.to_string()) });
        rpc.register("fail", |_| async move {
            Err(RpcError::new(4001, "nope", Some("d".into())))
        });
        rpc.register("panic", |_| async move {
            if true {
                panic!("handler bug");
            }
            Ok(String::new())
        });
        rpc.register("big", |_| async move {
            Ok("b".repeat(MAX_RPC_PAYLOAD_BYTES + 1))
        });
        let ask = |method: &str, version: u32| RpcRequest {
            id: "r".into(),
            method: method.into(),
            payload: "hi".into(),
            response_timeout_ms: 1000,
            version,
            compressed_payload: Vec::new(),
        };
        let code = |o: RpcOutcome| match o {
            RpcOutcome::Error(e) => e.code,
            other => panic!("expected an error, got {other:?}"),
        };
        let bob = ParticipantIdentity::from("bob");
        assert_eq!(
            answer(&rpc, bob.clone(), ask("echo", 1)).await,
            RpcOutcome::Payload("hi".into())
        );
        assert_eq!(
            answer(&rpc, bob.clone(), ask("who", 1)).await,
            RpcOutcome::Payload("bob".into())
        );
        assert_eq!(
            answer(&rpc, bob.clone(), ask("fail", 1)).await,
            RpcOutcome::Error(RpcErrorInfo {
                code: 4001,
                message: "nope".into(),
                data: "d".into()
            })
        );
        assert_eq!(code(answer(&rpc, bob.clone(), ask("panic", 1)).await), 1500);
        assert_eq!(code(answer(&rpc, bob.clone(), ask("big", 1)).await), 1504);
        assert_eq!(
            code(answer(&rpc, bob.clone(), ask("nothing", 1)).await),
            1400
        );
        assert_eq!(code(answer(&rpc, bob.clone(), ask("echo", 2)).await), 1404);
        rpc.unregister("echo");
        assert_eq!(code(answer(&rpc, bob, ask("echo", 1)).await), 1400);
    }

    #[test]
    fn requests_in_progress_are_bounded_and_released() {
        let rpc = Rpc::default();
        let mut held: Vec<_> = (0..MAX_REQUESTS_IN_PROGRESS)
            .map(|_| rpc.enter().expect("under the bound"))
            .collect();
        assert!(rpc.enter().is_none(), "one past the bound");
        assert!(rpc.enter().is_none(), "a refusal takes no place");
        held.pop();
        let last = rpc.enter().expect("a place freed");
        drop(last);
        drop(held);
        assert_eq!(
            rpc.in_progress.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn answers_settle_the_calls_they_name_and_departures_the_rest() {
        let rpc = Rpc::default();
        let mut rxs = Vec::new();
        for (id, dest) in [("a", "bob"), ("b", "bob"), ("c", "carol")] {
            let (ack, ack_rx) = oneshot::channel();
            let (resp, resp_rx) = oneshot::channel();
            lock(&rpc.pending).insert(
                id.into(),
                Pending {
                    destination: dest.into(),
                    ack: Some(ack),
                    response: Some(resp),
                },
            );
            rxs.push((ack_rx, resp_rx));
        }
        rpc.on_ack(RpcAck {
            request_id: "a".into(),
        });
        rpc.on_ack(RpcAck {
            request_id: "a".into(),
        }); // repeated: ignored
        rpc.on_response(RpcResponse {
            request_id: "a".into(),
            outcome: Some(RpcOutcome::Error(RpcErrorInfo {
                code: 7,
                message: "no".into(),
                data: "d".into(),
            })),
        });
        rpc.participant_left("bob");
        let (a, b) = (rxs.remove(0), rxs.remove(0));
        assert!(a.0.await.is_ok());
        assert_eq!(
            a.1.await.unwrap(),
            Err(RpcError::new(7, "no", Some("d".into())))
        );
        assert_eq!(
            b.1.await.unwrap().unwrap_err().built_in_code(),
            Some(RpcErrorCode::RecipientDisconnected)
        );
        assert_eq!(lock(&rpc.pending).len(), 1, "carol's call is still open");
        rpc.on_response(RpcResponse {
            request_id: "zzz".into(),
            outcome: None,
        }); // unknown: ignored
    }
}
