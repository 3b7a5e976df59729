//! JSON-RPC 2.0 as the TrueNAS middleware speaks it (`api/base/server/ws_handler/rpc.py`,
//! `service_exception.py`; dialects.md §1): the request envelope, and the error object with
//! TrueNAS's `data` (`error` errno, `errname`, `reason`, `trace`, `extra`). Every core error
//! is mapped to this shape in [`RpcError::from_core`], and nowhere else.

use crate::app::fault::{Fault, server_fault};
use otpd_core::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// JSON-RPC error codes TrueNAS uses.
pub mod code {
    /// The message is not JSON.
    pub const INVALID_JSON: i64 = -32700;
    /// The message is not a request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The parameters failed validation (`ValidationErrors`).
    pub const INVALID_PARAMS: i64 = -32602;
    /// A `CallError`.
    pub const CALL_ERROR: i64 = -32001;
}

/// The errno values TrueNAS reports, with their names (Linux numbering plus the
/// middleware's own above 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// 1
    Eperm,
    /// 2
    Enoent,
    /// 11
    Eagain,
    /// 13
    Eacces,
    /// 14 (the default errno of a CallError)
    Efault,
    /// 16
    Ebusy,
    /// 17
    Eexist,
    /// 22
    Einval,
    /// 207: the call needs an authenticated connection.
    Enotauthenticated,
}

impl Errno {
    /// The number.
    pub fn number(self) -> i64 {
        match self {
            Errno::Eperm => 1,
            Errno::Enoent => 2,
            Errno::Eagain => 11,
            Errno::Eacces => 13,
            Errno::Efault => 14,
            Errno::Ebusy => 16,
            Errno::Eexist => 17,
            Errno::Einval => 22,
            Errno::Enotauthenticated => 207,
        }
    }

    /// The name (`errno.errorcode` in Python).
    pub fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Enoent => "ENOENT",
            Errno::Eagain => "EAGAIN",
            Errno::Eacces => "EACCES",
            Errno::Efault => "EFAULT",
            Errno::Ebusy => "EBUSY",
            Errno::Eexist => "EEXIST",
            Errno::Einval => "EINVAL",
            Errno::Enotauthenticated => "ENOTAUTHENTICATED",
        }
    }
}

/// One entry of a TrueNAS `ValidationErrors`: attribute, message, errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The attribute path, e.g. `twofactor_options.otp_digits`.
    pub attribute: String,
    /// The message (pydantic's wording for argument validation).
    pub message: String,
    /// Usually EINVAL.
    pub errno: Errno,
}

impl Invalid {
    /// An EINVAL entry.
    pub fn new(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            attribute: attribute.into(),
            message: message.into(),
            errno: Errno::Einval,
        }
    }
}

/// A failed call, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// -32700, answered with a null id.
    InvalidJson(String),
    /// -32600, answered with a null id.
    InvalidRequest(String),
    /// -32601 "Method does not exist".
    MethodNotFound,
    /// -32602 "Invalid params" with the entries in `extra`.
    Validation(Vec<Invalid>),
    /// -32001 "Method call error": a TrueNAS `CallError`.
    Call {
        /// The errno.
        errno: Errno,
        /// The message (the reason is `[ERRNAME] message`).
        message: String,
    },
}

impl RpcError {
    /// A `CallError`.
    pub fn call(errno: Errno, message: impl Into<String>) -> Self {
        RpcError::Call {
            errno,
            message: message.into(),
        }
    }

    /// One validation error.
    pub fn invalid(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError::Validation(vec![Invalid::new(attribute, message)])
    }

    /// "Not authenticated" (ENOTAUTHENTICATED), as for any call before logging in.
    pub fn not_authenticated() -> Self {
        RpcError::call(Errno::Enotauthenticated, "Not authenticated")
    }

    /// "Not authorized" (EACCES), as when a role is missing.
    pub fn not_authorized() -> Self {
        RpcError::call(Errno::Eacces, "Not authorized")
    }

    /// The one mapping of core errors onto TrueNAS errors. Call sites that know better (a
    /// missing user named in the message, TrueNAS's renewal refusal) map those cases first.
    pub fn from_core(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, message } => RpcError::invalid(field, message),
            CoreError::NotFound(what) => RpcError::call(Errno::Enoent, format!("{what} not found")),
            CoreError::Conflict(why) => RpcError::call(Errno::Eexist, why),
            CoreError::Unauthenticated => RpcError::not_authenticated(),
            CoreError::Forbidden(_) => RpcError::not_authorized(),
            CoreError::StepUpRequired => RpcError::call(
                Errno::Eperm,
                "This change requires two-factor authentication: log in with the OTP_TOKEN mechanism first.",
            ),
            CoreError::SecondFactorFailed { reason } => RpcError::call(
                Errno::Eacces,
                format!("Two-factor authentication failed: {}", reason.as_str()),
            ),
            CoreError::AccountLocked => RpcError::call(Errno::Eacces, "Account is locked"),
            CoreError::Storage(_)
            | CoreError::Sealing
            | CoreError::WrongMasterKey { .. }
            | CoreError::Internal(_) => match server_fault(&e) {
                Some(Fault::Unavailable) => {
                    RpcError::call(Errno::Eagain, "Storage unavailable; retry later")
                }
                _ => RpcError::call(Errno::Efault, "Internal error"),
            },
        }
    }

    /// [`RpcError::from_core`], except that a core validation error names its field under
    /// `prefix`: TrueNAS names attributes by the argument that holds them
    /// (`user_create.email`, `auth_twofactor_update.window`).
    pub fn from_core_under(prefix: &str, e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, message } => {
                RpcError::invalid(format!("{prefix}.{field}"), message)
            }
            other => RpcError::from_core(other),
        }
    }

    /// The `error` member of the response.
    pub fn to_json(&self) -> Value {
        match self {
            RpcError::InvalidJson(message) => {
                json!({"code": code::INVALID_JSON, "message": message})
            }
            RpcError::InvalidRequest(message) => {
                json!({"code": code::INVALID_REQUEST, "message": message})
            }
            RpcError::MethodNotFound => {
                json!({"code": code::METHOD_NOT_FOUND, "message": "Method does not exist"})
            }
            RpcError::Validation(errors) => {
                // str(ValidationErrors): one "[ERRNAME] attribute: message" line each.
                let reason: String = errors
                    .iter()
                    .map(|e| format!("[{}] {}: {}\n", e.errno.name(), e.attribute, e.message))
                    .collect();
                let extra: Vec<Value> = errors
                    .iter()
                    .map(|e| json!([e.attribute, e.message, e.errno.number()]))
                    .collect();
                json!({
                    "code": code::INVALID_PARAMS,
                    "message": "Invalid params",
                    "data": data(Errno::Einval, reason, Value::Array(extra)),
                })
            }
            RpcError::Call { errno, message } => json!({
                "code": code::CALL_ERROR,
                "message": "Method call error",
                "data": data(*errno, format!("[{}] {message}", errno.name()), Value::Null),
            }),
        }
    }

    /// Whether the response carries a null id (the request could not be read).
    pub fn without_id(&self) -> bool {
        matches!(self, RpcError::InvalidJson(_) | RpcError::InvalidRequest(_))
    }
}

/// TrueNAS's error `data`. `trace` is always null: there is no Python traceback to show,
/// and otpd never sends its internals to a client.
fn data(errno: Errno, reason: String, extra: Value) -> Value {
    json!({
        "error": errno.number(),
        "errname": errno.name(),
        "reason": reason,
        "trace": null,
        "extra": extra,
    })
}

/// A request's id, kept as the client wrote it (a number, a string or null), so that it is
/// echoed exactly: a 30-digit number comes back as those 30 digits, not as a float.
#[derive(Debug, Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    /// `null`, for answers to requests that could not be read.
    pub fn null() -> Id {
        Id(RawValue::NULL.to_owned())
    }

    /// The id's JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

/// A request read from the socket.
#[derive(Debug, Clone)]
pub struct Request {
    /// The id to answer with (number, string or null), as written.
    pub id: Id,
    /// The method name.
    pub method: String,
    /// The positional parameters (`[]` when absent).
    pub params: Vec<Value>,
}

impl Request {
    /// Reads one text message as TrueNAS does: JSON, then the request schema
    /// (`jsonrpc` "2.0" and `method` required, `params` an array, `id` null/number/string,
    /// nothing else). Batches are not supported (TrueNAS neither).
    pub fn parse(text: &str) -> Result<Request, RpcError> {
        // Keys named twice are refused (crate::json), as on every front door.
        let value: Value =
            crate::json::from_str(text).map_err(|e| RpcError::InvalidJson(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(RpcError::InvalidRequest(format!(
                "{text} is not of type 'object'"
            )));
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "jsonrpc" | "method" | "params" | "id") {
                return Err(RpcError::InvalidRequest(format!(
                    "Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
        }
        match object.get("jsonrpc") {
            Some(Value::String(v)) if v == "2.0" => {}
            Some(other) => {
                return Err(RpcError::InvalidRequest(format!(
                    "{other} is not one of ['2.0']"
                )));
            }
            None => {
                return Err(RpcError::InvalidRequest(
                    "'jsonrpc' is a required property".into(),
                ));
            }
        }
        let method = match object.remove("method") {
            Some(Value::String(m)) => m,
            Some(other) => {
                return Err(RpcError::InvalidRequest(format!(
                    "{other} is not of type 'string'"
                )));
            }
            None => {
                return Err(RpcError::InvalidRequest(
                    "'method' is a required property".into(),
                ));
            }
        };
        let params = match object.remove("params") {
            None => Vec::new(),
            Some(Value::Array(p)) => p,
            Some(other) => {
                return Err(RpcError::InvalidRequest(format!(
                    "{other} is not of type 'array'"
                )));
            }
        };
        let id = object.remove("id").unwrap_or(Value::Null);
        if !(id.is_null() || id.is_number() || id.is_string()) {
            return Err(RpcError::InvalidRequest(format!(
                "{id} is not of type 'null', 'number', 'string'"
            )));
        }
        /// The id's text, read apart from the `Value` (which turns large numbers into floats).
        #[derive(Deserialize)]
        struct RawId {
            id: Option<Box<RawValue>>,
        }
        let raw: RawId =
            serde_json::from_str(text).map_err(|e| RpcError::InvalidJson(e.to_string()))?;
        let id = raw.id.map_or_else(Id::null, Id);
        Ok(Request { id, method, params })
    }
}

/// A response object: `result` or `error`, and the id as the request wrote it.
#[derive(Serialize)]
struct Response<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
    id: &'a RawValue,
}

impl Response<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}"#
                .to_owned()
        })
    }
}

/// A success response, as the text to send.
pub fn result(id: &Id, result: Value) -> String {
    Response {
        jsonrpc: "2.0",
        result: Some(result),
        error: None,
        id: &id.0,
    }
    .text()
}

/// An error response, as the text to send.
pub fn error(id: &Id, error: &RpcError) -> String {
    let null = Id::null();
    let id = if error.without_id() { &null } else { id };
    Response {
        jsonrpc: "2.0",
        result: None,
        error: Some(error.to_json()),
        id: &id.0,
    }
    .text()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_are_read_as_truenas_reads_them() {
        let r = Request::parse(r#"{"jsonrpc":"2.0","id":7,"method":"core.ping"}"#).unwrap();
        assert_eq!(
            (r.id.as_json(), r.method.as_str(), r.params.len()),
            ("7", "core.ping", 0)
        );
        // Ids come back exactly as written.
        for id in [
            "123456789012345678901234567890",
            "1.50",
            "\"x\"",
            "null",
            "-0",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"core.ping"}}"#);
            let r = Request::parse(&text).unwrap();
            let answer = result(&r.id, json!("pong"));
            assert!(answer.ends_with(&format!(r#""id":{id}}}"#)), "{answer}");
        }
        for (text, want) in [
            ("{", "InvalidJson"),
            ("[1]", "InvalidRequest"),
            (r#"{"jsonrpc":"1.0","method":"x"}"#, "InvalidRequest"),
            (r#"{"jsonrpc":"2.0"}"#, "InvalidRequest"),
            (
                r#"{"jsonrpc":"2.0","method":"x","params":{}}"#,
                "InvalidRequest",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","id":[]}"#,
                "InvalidRequest",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","extra":1}"#,
                "InvalidRequest",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","method":"y"}"#,
                "InvalidJson",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","params":[{"a":1,"a":2}]}"#,
                "InvalidJson",
            ),
        ] {
            let e = Request::parse(text).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{text}: {e:?}");
            let one = Request::parse(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).unwrap();
            assert_eq!(answer(&error(&one.id, &e))["id"], Value::Null);
        }
    }

    fn answer(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn id(n: u32) -> Id {
        Request::parse(&format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"x"}}"#))
            .unwrap()
            .id
    }

    #[test]
    fn errors_have_truenas_shape() {
        let e = answer(&error(
            &id(3),
            &RpcError::call(
                Errno::Eperm,
                "alice: currently authenticated credential may not renew two-factor authentication for this user.",
            ),
        ));
        assert_eq!(e["error"]["code"], -32001);
        assert_eq!(e["error"]["message"], "Method call error");
        assert_eq!(e["error"]["data"]["error"], 1);
        assert_eq!(e["error"]["data"]["errname"], "EPERM");
        assert!(
            e["error"]["data"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("[EPERM] alice: ")
        );
        let v = answer(&error(
            &id(4),
            &RpcError::invalid(
                "twofactor_options.otp_digits",
                "Input should be greater than or equal to 6",
            ),
        ));
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(
            v["error"]["data"]["extra"],
            json!([[
                "twofactor_options.otp_digits",
                "Input should be greater than or equal to 6",
                22
            ]])
        );
        assert_eq!(
            v["error"]["data"]["reason"],
            "[EINVAL] twofactor_options.otp_digits: Input should be greater than or equal to 6\n"
        );
    }
}
