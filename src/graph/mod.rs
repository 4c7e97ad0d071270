//! Graph knowledge: the path grammar of `/communications/calls`, what replay does with
//! each recorded header (the policy; `replay::headers` executes it), which JSON
//! members hold identities or call-scoped ids, notification shapes, and error bodies.
//!
//! Nothing here does I/O; the HTTP plumbing (`http`) never looks inside Graph
//! payloads, and this module never touches a socket. It imports only `ids::token`.

use serde_json::Value;

use crate::ids::token;

mod path;
pub use path::GraphPath;

/// API versions Graph serves; a path under anything else is not a Graph call.
pub const VERSIONS: [&str; 2] = ["v1.0", "beta"];

/// The action namespace the generated SDKs put in front of action names.
const ACTION_PREFIX: &str = "microsoft.graph.";

/// True when a path segment is exactly one id-like token (a call, operation or
/// participant id). The docs' literal `{id}` placeholder counts too.
pub fn is_id_segment(seg: &str) -> bool {
    if seg == "{id}" {
        return true;
    }
    let toks = token::scan(seg);
    toks.len() == 1 && toks[0].start == 0 && toks[0].end == seg.len()
}

/// Splits a request target into path and query.
pub fn split_uri(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    }
}

/// What replay does with a recorded response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseHeader {
    /// `Location`: ids rewritten, and pointed back at graphvcr with the live version.
    Relocate,
    /// Echo of a request header (`client-request-id`, `scenario-id`): the live value.
    Echo,
    /// A per-response identifier (`request-id`): regenerated from the session seed.
    Regenerate,
    /// Anything else: ids rewritten.
    Rewrite,
}

pub fn response_header(name: &str) -> ResponseHeader {
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    if is("location") {
        ResponseHeader::Relocate
    } else if is("client-request-id") || is("scenario-id") {
        ResponseHeader::Echo
    } else if is("request-id") {
        ResponseHeader::Regenerate
    } else {
        ResponseHeader::Rewrite
    }
}

/// What replay does with a recorded notification header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationHeader {
    /// Graph's signed `Authorization` cannot be replayed.
    Drop,
    /// Unique per POST (`X-Microsoft-Skype-Message-ID`): fresh, from the seed.
    Fresh,
    /// Anything else (`X-Microsoft-Skype-Chain-ID`, ...): ids rewritten.
    Rewrite,
}

/// The recorded notification header that keeps the non-secret claims of Graph's
/// callback token (JSON), from which replay signs a token of its own.
pub const CALLBACK_CLAIMS_HEADER: &str = "x-graphvcr-callback-claims";

/// Whether a recorded header holds identities (app and tenant ids) that stay as
/// recorded unless the bot sends them.
pub fn is_identity_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(CALLBACK_CLAIMS_HEADER)
}

pub fn notification_header(name: &str) -> NotificationHeader {
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    if is("authorization") {
        NotificationHeader::Drop
    } else if is("x-microsoft-skype-message-id") || is("x-microsoft-skype-original-message-id") {
        NotificationHeader::Fresh
    } else {
        NotificationHeader::Rewrite
    }
}

/// Members whose values are identities that recur across calls (tenant, user, app):
/// an id found under one of these keys stays as recorded unless the bot sent it.
const IDENTITY_KINDS: &[&str] = &[
    "user",
    "application",
    "applicationInstance",
    "device",
    "guest",
    "phone",
    "onPremises",
    "encrypted",
    "azureCommunicationServicesUser",
    "assertedIdentity",
];

/// Whether `key` (inside an object reached through `parent`) holds a stable identity.
pub fn is_identity_member(parent: Option<&str>, key: &str) -> bool {
    key == "tenantId"
        || key == "policyHolderTenantId"
        || (key == "id" && parent.is_some_and(|p| IDENTITY_KINDS.contains(&p)))
}

/// Body members whose ids are call-scoped: they may select a replay session. A
/// meeting's `threadId` is not one: every call that joins the meeting carries it.
pub fn is_call_scoped_member(key: &str) -> bool {
    matches!(key, "replacesCallId" | "participantId" | "callId" | "myParticipantId")
}

/// Members never matched nor rewritten: type annotations.
pub fn is_annotation_member(key: &str) -> bool {
    key == "@odata.type"
}

/// Members a serializer adds that say nothing about the request: OData annotations
/// (`@odata.type`, `@odata.context`, ...) and Newtonsoft's reference metadata (`$id`,
/// `$ref`), which the .NET SDKs put in request bodies. Matching ignores them.
pub fn is_serializer_annotation(key: &str) -> bool {
    key.starts_with("@odata.") || matches!(key, "$id" | "$ref" | "$type" | "$values")
}

/// Members of the cloud-communications API whose values are Graph enumerations
/// (from the v1.0/beta resource pages: modality, mediaDirection, tone, changeType,
/// operationStatus, callState, endpointType, screenSharingRole, routingPolicy,
/// callDisposition, callDirection, rejectReason, recordingStatus, ...). A live value
/// that differs from the recorded one is another request, not another spelling.
pub const ENUM_MEMBERS: &[&str] = &[
    "modalities",
    "requestedModalities",
    "acceptedModalities",
    "activeModalities",
    "mediaType",
    "direction",
    "tone",
    "changeType",
    "status",
    "state",
    "endpointType",
    "role",
    "routingPolicies",
    "disposition",
    "reason",
    "routingType",
    "recordingStatus",
    "audio",
];

/// Whether the member `key` holds a Graph enumeration value (compared exactly).
pub fn is_enum_member(key: &str) -> bool {
    ENUM_MEMBERS.contains(&key)
}

/// Notification members that name the resource a notification is about.
pub const NOTIFICATION_RESOURCE_MEMBERS: [&str; 3] = ["resource", "resourceUrl", "resourceData"];

/// The individual notifications of a callback body: the items of a
/// `commsNotifications` batch (`{"value":[...]}`), or the body itself.
pub fn notification_items(v: &Value) -> Vec<&Value> {
    match v.get("value") {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => vec![v],
    }
}

/// The call ids a callback body is about: the id after `calls/` in each item's
/// `resourceUrl` (or `resource`), in order, without repeats.
pub fn notification_call_ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in notification_items(v) {
        let url = item
            .get("resourceUrl")
            .or_else(|| item.get("resource"))
            .and_then(Value::as_str);
        let Some((path, _)) = url.map(split_uri) else { continue };
        let mut segs = path.split('/').filter(|s| !s.is_empty());
        while let Some(seg) = segs.next() {
            if seg == "calls" {
                if let Some(id) = segs.next().filter(|id| is_id_segment(id)) {
                    if !out.iter().any(|o| o == id) {
                        out.push(id.to_string());
                    }
                }
                break;
            }
        }
    }
    out
}

/// The operation id inside a notification's `resourceUrl`
/// (`/communications/calls/{call}/operations/{op}`), when it is an id.
pub fn operation_id_in(resource_url: &str) -> Option<&str> {
    let (path, _) = split_uri(resource_url);
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    while let Some(s) = segs.next() {
        if s == "operations" {
            let op = segs.next()?;
            return is_id_segment(op).then_some(op);
        }
    }
    None
}

/// Whether a request can change state in Graph (and so cause notifications, or create
/// resources): anything but a read.
pub fn changes_state(method: &str) -> bool {
    !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD")
}

/// `POST /communications/calls`: the bot creates a call.
pub fn creates_call(method: &str, path: &GraphPath) -> bool {
    method == "POST" && path.segments().eq(["communications", "calls"])
}

/// Actions after which Graph learns the bot's `callbackUri`: create call and answer.
pub fn carries_callback_uri(method: &str, path: &GraphPath) -> bool {
    let n = path.segments().len();
    let calls = path.segments().take(2).eq(["communications", "calls"]);
    method == "POST" && calls && (n == 2 || (n == 4 && path.segment(3) == Some("answer")))
}

/// Points a recorded `Location` at graphvcr: the live origin (`http://host:port`)
/// replaces Graph's, and the live API version replaces the recorded one.
pub fn relocate(location: &str, live_origin: Option<&str>, live_version: &str) -> String {
    let (origin, rest) = match location.find("://") {
        Some(i) => {
            let after = &location[i + 3..];
            let cut = after.find('/').map_or(location.len(), |j| i + 3 + j);
            (&location[..cut], &location[cut..])
        }
        None => ("", location),
    };
    let origin = match live_origin {
        Some(o) if !origin.is_empty() => o,
        _ => origin,
    };
    // written in one allocation: origin, then the path with the live version
    let mut out = String::with_capacity(origin.len() + rest.len() + live_version.len());
    out.push_str(origin);
    match rest.strip_prefix('/').and_then(|r| r.split_once('/')) {
        Some((v, tail)) if VERSIONS.contains(&v) => {
            for part in ["/", live_version, "/", tail] {
                out.push_str(part);
            }
        }
        _ => out.push_str(rest),
    }
    out
}

/// A Graph-shaped error body: `{"error":{"code","message","innerError":{...}}}`,
/// written straight from its parts (`to_bytes`; the message is escaped as it is
/// formatted, never held as a string first).
pub struct ErrorBody<'a> {
    code: &'a str,
    message: &'a dyn std::fmt::Display,
    inner: InnerError<'a>,
}

/// What `innerError` holds: Graph's `request-id` and `date`, then graphvcr's own.
#[derive(Debug, Default)]
pub struct InnerError<'a> {
    /// `request-id`.
    pub request_id: &'a str,
    pub date: &'a str,
    /// `graphvcr-failed`, who failed: `request`, `upstream`, `store`, `graphvcr`,
    /// `injected`.
    pub failed: Option<&'a str>,
    /// `graphvcr-nearest-seq`, a miss's nearest recording.
    pub nearest_seq: Option<u64>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(code: &'a str, message: &'a dyn std::fmt::Display, inner: InnerError<'a>) -> ErrorBody<'a> {
        ErrorBody { code, message, inner }
    }

    /// The body's bytes, members in the order Graph writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        use crate::jsonstr::{push_escaped, Escaping};
        use std::fmt::Write as _;
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(b"{\"error\":{\"code\":\"");
        push_escaped(&mut out, self.code);
        out.extend_from_slice(b"\",\"message\":\"");
        // writing into a Vec cannot fail
        let _ = write!(Escaping::new(&mut out), "{}", self.message);
        out.extend_from_slice(b"\",\"innerError\":{\"request-id\":\"");
        push_escaped(&mut out, self.inner.request_id);
        out.push(b'"');
        push_member(&mut out, "date", self.inner.date);
        if let Some(f) = self.inner.failed {
            push_member(&mut out, "graphvcr-failed", f);
        }
        if let Some(n) = self.inner.nearest_seq {
            let _ = std::io::Write::write_fmt(&mut out, format_args!(",\"graphvcr-nearest-seq\":{n}"));
        }
        out.extend_from_slice(b"}}}");
        out
    }
}

/// `,"name":"value"`, the value escaped.
fn push_member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    crate::jsonstr::push_escaped(out, value);
    out.push(b'"');
}

/// The Graph error code for an HTTP status graphvcr answers with.
pub fn error_code(status: u16) -> &'static str {
    match status {
        400 => "invalidRequest",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "notSupported",
        409 => "conflict",
        413 => "requestEntityTooLarge",
        415 => "unsupportedMediaType",
        429 => "TooManyRequests",
        431 => "requestHeaderFieldsTooLarge",
        502 => "badGateway",
        503 => "serviceNotAvailable",
        504 => "gatewayTimeout",
        _ => "generalException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn app_and_action_prefix_normalise() {
        let a = GraphPath::parse(
            "/beta/app/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/microsoft.graph.invite",
        )
        .unwrap();
        let b = GraphPath::parse("/beta/communications/calls/AB6233A520B74C5EBEA2CE56C9776429/participants/invite")
            .unwrap();
        assert_eq!(a.template(), "/communications/calls/{id}/participants/invite");
        assert_eq!(a.template(), b.template());
        assert_eq!(a.version(), "beta");
        assert_eq!(a, serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"version": "beta", "segments": ["communications", "calls", "AB6233A520B74C5EBEA2CE56C9776429", "participants", "invite"]})
        );
    }

    #[test]
    fn non_graph_paths_are_refused() {
        assert!(GraphPath::parse("/v2/communications/calls").is_none());
        assert!(GraphPath::parse("/").is_none());
    }

    #[test]
    fn operation_id_is_found_only_when_id_like() {
        assert_eq!(
            operation_id_in("/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/operations/eec3812a-fdc3-4fb4-825c-a06c9f35414e"),
            Some("eec3812a-fdc3-4fb4-825c-a06c9f35414e")
        );
        assert_eq!(
            operation_id_in("/communications/calls/7531d31f-d10d-44de-802f-c569dbca451c/operations/participants"),
            None
        );
    }

    #[test]
    fn relocate_moves_origin_and_version() {
        let l = "https://graph.microsoft.com/beta/communications/calls/a/operations/b";
        assert_eq!(
            relocate(l, Some("http://127.0.0.1:8060"), "v1.0"),
            "http://127.0.0.1:8060/v1.0/communications/calls/a/operations/b"
        );
        assert_eq!(relocate("/beta/x/y", None, "v1.0"), "/v1.0/x/y");
    }

    #[test]
    fn error_body_is_graph_shaped() {
        let inner = InnerError {
            request_id: "rid",
            date: "2026-01-01T00:00:00",
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&ErrorBody::new("itemNotFound", &"nope", inner).to_bytes()).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "itemNotFound", "message": "nope", "innerError": {"request-id": "rid", "date": "2026-01-01T00:00:00"}}})
        );
        let inner = InnerError {
            request_id: "rid",
            date: "d",
            failed: Some("request"),
            nearest_seq: Some(4),
        };
        let bytes = ErrorBody::new("itemNotFound", &"a \"miss\"", inner).to_bytes();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"error":{"code":"itemNotFound","message":"a \"miss\"","innerError":{"request-id":"rid","date":"d","graphvcr-failed":"request","graphvcr-nearest-seq":4}}}"#
        );
    }
}
