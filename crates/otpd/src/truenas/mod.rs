//! The TrueNAS dialect: JSON-RPC 2.0 over a WebSocket at `/api/current` (and the versioned
//! aliases TrueNAS 25.04 and 25.10 clients use), answering the middleware calls a TrueNAS
//! client needs around `user.renew_2fa_secret` (seeds 000 and 001) exactly as TrueNAS shapes
//! them (dialects.md §1). Every rule is the core's: this module reads parameters, calls the
//! `Service` and writes TrueNAS's answers. What differs from TrueNAS, and why, is in
//! `docs/dialects/truenas.md`.
//!
//! A connection holds at most one login. The token behind it is checked again by the core on
//! every call, so a logout or revocation made anywhere (another connection, the REST API,
//! another instance) ends this connection's access at its next call.

mod auth;
mod params;
mod query;
pub mod rpc;
mod twofactor;
mod user;

use crate::app::AppState;
use crate::app::client::Client;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use otpd_core::{Door, Principal, RequestMeta};
use rpc::{Request, RpcError};
use serde_json::Value;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// The paths TrueNAS clients connect to.
pub const PATHS: [&str; 3] = ["/api/current", "/api/v25.04.0", "/api/v25.10.0"];

/// Largest message accepted (TrueNAS limits messages too; this is far above any call here).
const MAX_MESSAGE: usize = 64 * 1024;

/// A connection that sends nothing for this long is closed, so idle sockets do not pile up.
const IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// The routes of the dialect.
pub fn router() -> Router<AppState> {
    PATHS
        .iter()
        .fold(Router::new(), |r, path| r.route(path, get(upgrade)))
}

async fn upgrade(State(state): State<AppState>, client: Client, ws: WebSocketUpgrade) -> Response {
    let meta = client.meta(Door::Truenas);
    let peer = meta.remote_addr.as_deref().and_then(|a| a.parse().ok());
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, Conn::new(state, meta, peer)))
}

/// One connection's state.
pub(crate) struct Conn {
    state: AppState,
    meta: RequestMeta,
    peer: Option<IpAddr>,
    /// The token (session or API key) this connection logged in with.
    login: Option<Login>,
    /// A password accepted, waiting for `OTP_TOKEN`.
    pending: Option<Pending>,
}

pub(crate) struct Login {
    token: Zeroizing<String>,
    /// Whether the token is ours to end on `auth.logout` (a session, not an API key).
    session: bool,
}

pub(crate) struct Pending {
    challenge: Zeroizing<String>,
    username: String,
}

impl Conn {
    fn new(state: AppState, meta: RequestMeta, peer: Option<IpAddr>) -> Self {
        Conn {
            state,
            meta,
            peer,
            login: None,
            pending: None,
        }
    }

    fn service(&self) -> &otpd_core::Service {
        &self.state.service
    }

    /// The logged-in principal, checked by the core now (so revocations are seen).
    async fn principal(&mut self) -> Result<Principal, RpcError> {
        let Some(login) = &self.login else {
            return Err(RpcError::not_authenticated());
        };
        match self.state.service.authenticate(&login.token).await {
            Ok(p) => Ok(p),
            Err(otpd_core::CoreError::Unauthenticated) => {
                self.login = None;
                Err(RpcError::not_authenticated())
            }
            Err(e) => Err(RpcError::from_core(e)),
        }
    }

    /// Answers one text message (every message gets an answer, as in TrueNAS).
    async fn handle(&mut self, text: &str) -> String {
        let request = match Request::parse(text) {
            Ok(r) => r,
            Err(e) => return rpc::error(&rpc::Id::null(), &e),
        };
        match self.call(&request.method, &request.params).await {
            Ok(result) => rpc::result(&request.id, result),
            Err(e) => rpc::error(&request.id, &e),
        }
    }

    /// The method table.
    async fn call(&mut self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        // Methods open to a connection that has not logged in.
        match method {
            "core.ping" => return Ok(Value::String("pong".into())),
            "auth.mechanism_choices" => return Ok(auth::mechanism_choices()),
            "auth.login_ex" | "auth.login_ex_continue" => return self.login_ex(params).await,
            "auth.login_with_api_key" => return self.login_with_api_key(params).await,
            "auth.login" => return self.login_legacy(params).await,
            _ => {}
        }
        // Known methods first, as TrueNAS does: an unknown one is "Method does not exist"
        // even on a connection that has not logged in.
        let Some(call) = Call::named(method) else {
            return Err(RpcError::MethodNotFound);
        };
        let principal = self.principal().await?;
        match call {
            Call::Me => self.me(&principal).await,
            Call::Logout => self.logout(&principal).await,
            Call::TwofactorConfig => twofactor::config(self, &principal).await,
            Call::TwofactorUpdate => twofactor::update(self, &principal, params).await,
            Call::UserQuery => user::query(self, &principal, params).await,
            Call::UserGetInstance => user::get_instance(self, &principal, params).await,
            Call::UserCreate => user::create(self, &principal, params).await,
            Call::UserUpdate => user::update(self, &principal, params).await,
            Call::UserDelete => user::delete(self, &principal, params).await,
            Call::Renew2faSecret => user::renew_2fa_secret(self, &principal, params).await,
            Call::Unset2faSecret => user::unset_2fa_secret(self, &principal, params).await,
            Call::UserTwofactorConfig => {
                user::twofactor_config_call(self, &principal, params).await
            }
            Call::ProvisioningUri => user::provisioning_uri(self, &principal, params).await,
            Call::ShellChoices => Ok(user::shell_choices()),
        }
    }
}

/// The methods that need a logged-in connection (the match on it is exhaustive, so a
/// method named here cannot lack its handler).
#[derive(Debug, Clone, Copy)]
enum Call {
    Me,
    Logout,
    TwofactorConfig,
    TwofactorUpdate,
    UserQuery,
    UserGetInstance,
    UserCreate,
    UserUpdate,
    UserDelete,
    Renew2faSecret,
    Unset2faSecret,
    UserTwofactorConfig,
    ProvisioningUri,
    ShellChoices,
}

impl Call {
    fn named(method: &str) -> Option<Call> {
        Some(match method {
            "auth.me" => Call::Me,
            "auth.logout" => Call::Logout,
            "auth.twofactor.config" => Call::TwofactorConfig,
            "auth.twofactor.update" => Call::TwofactorUpdate,
            "user.query" => Call::UserQuery,
            "user.get_instance" => Call::UserGetInstance,
            "user.create" => Call::UserCreate,
            "user.update" => Call::UserUpdate,
            "user.delete" => Call::UserDelete,
            "user.renew_2fa_secret" => Call::Renew2faSecret,
            "user.unset_2fa_secret" => Call::Unset2faSecret,
            "user.twofactor_config" => Call::UserTwofactorConfig,
            "user.provisioning_uri" => Call::ProvisioningUri,
            "user.shell_choices" => Call::ShellChoices,
            _ => return None,
        })
    }
}

async fn serve(mut socket: WebSocket, mut conn: Conn) {
    // A socket that has not logged in by then is closed: unauthenticated sockets must not
    // pile up (each holds a connection slot of its address).
    let login_by = tokio::time::Instant::now() + conn.state.websocket_login_timeout;
    loop {
        let wait = if conn.login.is_some() {
            IDLE
        } else {
            login_by.saturating_duration_since(tokio::time::Instant::now())
        };
        let Ok(Some(Ok(message))) = tokio::time::timeout(wait, socket.recv()).await else {
            break;
        };
        let reply = match message {
            Message::Text(text) => conn.handle(text.as_str()).await,
            Message::Binary(_) => {
                // TrueNAS closes the connection on a non-text frame (1003, unsupported data).
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1003,
                        reason: "Invalid websocket message type: BINARY".into(),
                    })))
                    .await;
                break;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}
