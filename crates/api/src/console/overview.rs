//! `GET /console`: for those who manage SSO and SCIM, the status of both and every value the
//! Okta admin pastes (each with a copy button); for everyone else, what their role allows and
//! who can grant more.

use super::layout::{copy_field, page as layout, when, who_grants, Section};
use super::{html, ConsoleState};
use crate::error::{ApiResult, ConsolePage};
use crate::extract::{AnyRole, Member};
use crate::logout::{back_channel_logout_uri, universal_logout_endpoint};
use crate::scim::scim_base_url;
use crate::sso::{initiate_login_uri, redirect_uri};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use maud::html as markup;

pub(super) async fn page(
    State(s): State<ConsoleState>,
    who: Member<AnyRole>,
    headers: HeaderMap,
) -> ApiResult<ConsolePage> {
    let role = who.user.effective_role();
    if !Section::Sso.allows(role) {
        let names = s.team.super_admins(&who.tenant).await?;
        let content = markup! {
            p { "You are signed in as " strong { (role.display_name()) } ": " (role.description()) }
            @let pages: Vec<Section> = Section::ALL.into_iter().filter(|p| *p != Section::Overview && p.allows(role)).collect();
            @if pages.is_empty() {
                p #pages { "Your role opens none of the console's settings pages." }
            } @else {
                p #pages { "Pages you can open: "
                    @for (i, p) in pages.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(p.path()) { (p.label()) }
                    }
                }
            }
            (who_grants(&names))
        };
        return Ok(html(
            StatusCode::OK,
            layout(&who.user, Some(&who.csrf), Some(Section::Overview), "Overview", content),
        ));
    }
    let (settings, tokens, last_sign_in) = tokio::join!(
        s.sso.settings(&who.tenant),
        s.tokens.live_tokens(&who.tenant),
        s.audit.last_sign_in(&who.tenant),
    );
    let (settings, tokens, last_sign_in) = (settings?, tokens?, last_sign_in?);
    let origin = s.base_url.origin(&headers);
    let last_request = tokens.iter().filter_map(|t| t.last_used).max();
    let verified = settings.domain_records.iter().filter(|r| r.is_verified()).count();
    let pending = settings.domain_records.len() - verified;
    let content = markup! {
        h2 { "Status" }
        dl #status {
            dt { "Single sign-on" }
            dd #sso-status {
                @match (&settings.issuer, settings.enabled, settings.issuer_bound_at) {
                    (None, _, _) => { "Not set up. " a href="/console/sso" { "Set it up" } }
                    (Some(i), true, Some(_)) => { "On, through " (i.as_str()) }
                    (Some(i), _, None) => { "Saved for " (i.as_str()) "; waiting for a successful " a href="/console/sso#test" { "test sign-in" } }
                    (Some(i), false, Some(_)) => { "Off (" (i.as_str()) ")" }
                }
            }
            dt { "Email domains" }
            dd #domains-status { (verified) " verified, " (pending) " waiting for DNS verification" }
            dt { "SCIM provisioning" }
            dd #scim-status {
                @if tokens.is_empty() {
                    "No token yet. " a href="/console/scim" { "Generate one" }
                } @else {
                    "Token issued " (when(tokens.first().map(|t| t.created)))
                }
            }
            dt { "Last provisioning request" }
            dd #last-provisioning { (when(last_request)) @if last_request.is_some() { " (to within five minutes)" } }
            dt { "Last sign-in" }
            dd #last-sign-in {
                @match &last_sign_in {
                    Some(e) => { (e.event.at.to_human()) " — " (e.actor) }
                    None => { "None among the latest events of the audit trail" }
                }
            }
        }
        h2 { "Values for Okta" }
        p.hint { "Paste these into the Butterfly app in Okta (General, Sign On and Provisioning tabs)." }
        (copy_field("scim-base-url", "SCIM base URL", &scim_base_url(&s.base_url, &headers)))
        (copy_field("redirect-uri", "Sign-in redirect URI", &redirect_uri(&s.base_url, &headers)))
        (copy_field("initiate-login-uri", "Initiate login URI", &initiate_login_uri(&s.base_url, &headers)))
        (copy_field("universal-logout", "Universal Logout endpoint (global token revocation)", &universal_logout_endpoint(&origin, None)))
        (copy_field("universal-logout-tenant", "Universal Logout endpoint for this organisation only", &universal_logout_endpoint(&origin, Some(who.tenant.as_str()))))
        (copy_field("backchannel-logout", "Back-channel logout URI (other OpenID providers)", &back_channel_logout_uri(&origin)))
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Overview), "Overview", content)))
}
