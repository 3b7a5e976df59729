//! The native REST API (`/api/v1`), OpenAPI at `/openapi.json`, Swagger UI at `/docs`, and
//! the operations endpoints. Handlers translate; every rule is in `otpd_core::Service`. A
//! front door like the dialects: it depends on the shared [`crate::app`] and the core only.

mod accounts;
mod admin;
mod auth;
pub mod error;
pub(crate) mod extract;
pub(crate) mod limit;
mod totp;

use crate::app::AppState;
use axum::Router;
use axum::http::StatusCode;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpd",
        description = "Self-hosted two-factor authentication server: native REST API.",
        license(name = "MIT", identifier = "MIT")
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Login, sessions and API keys"),
        (name = "accounts", description = "Accounts"),
        (name = "totp", description = "TOTP authenticators and recovery codes"),
        (name = "admin", description = "Policy and audit"),
        (name = "operations", description = "Health"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("A session token or an API key"))
                        .build(),
                ),
            );
        }
    }
}

/// The routes and their OpenAPI description.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::second_factor))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(auth::create_api_key, auth::list_api_keys))
        .routes(routes!(auth::revoke_api_key))
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::get, accounts::update, accounts::delete))
        .routes(routes!(accounts::set_password))
        .routes(routes!(accounts::lock))
        .routes(routes!(accounts::unlock))
        .routes(routes!(
            totp::status,
            totp::provision,
            totp::update,
            totp::remove
        ))
        .routes(routes!(totp::enroll))
        .routes(routes!(totp::confirm))
        .routes(routes!(totp::renew))
        .routes(routes!(totp::verify))
        .routes(routes!(totp::resync))
        .routes(routes!(totp::qr_svg))
        .routes(routes!(totp::qr_png))
        .routes(routes!(totp::list_recovery, totp::regenerate_recovery))
        .routes(routes!(admin::get_policy, admin::patch_policy))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::live))
        .routes(routes!(admin::ready))
        .routes(routes!(admin::started))
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::readyz))
}

/// The OpenAPI document (for `/openapi.json` and tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The native API's routes with `/openapi.json` and the Swagger UI at `/docs`, for the
/// application's composition ([`crate::app::router`]).
pub(crate) fn routes() -> Router<AppState> {
    let (router, spec) = api().split_for_parts();
    // The validator is off: Swagger UI would otherwise send the spec's address to an
    // outside service from every browser that opens /docs under a public host name.
    router.merge(
        SwaggerUi::new("/docs")
            .url("/openapi.json", spec)
            .config(utoipa_swagger_ui::Config::default().validator_url("none")),
    )
}

/// The answer to a path no front door serves (problem+json, the native API's format).
pub(crate) async fn not_found() -> error::ApiError {
    error::ApiError::Request(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
    )
}
