//! `GET /console/scim`: the live SCIM tokens and the form that generates or rotates one;
//! `POST /console/scim/token`: the new token, shown once.

use super::layout::{copy_field, csrf_field, notice, page as layout, when, Section};
use super::{html, ConsoleState, Posted};
use crate::error::{ApiError, ApiResult, ConsolePage};
use crate::extract::{ManageSsoScim, Member};
use crate::scim::scim_base_url;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use butterfly_core::actor::Actor;
use butterfly_core::scim_tokens::{RotationMode, DEFAULT_OVERLAP_HOURS, MAX_OVERLAP_SECS};
use butterfly_core::token::TokenRecord;
use maud::{html as markup, Markup};

const TITLE: &str = "SCIM provisioning";

fn tokens_table(tokens: &[TokenRecord]) -> Markup {
    markup! {
        table #tokens {
            caption { "Live tokens (two at most: the current one and the one it overlaps)" }
            thead { tr { th scope="col" { "Token" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Stops working" } } }
            tbody {
                @for t in tokens {
                    tr {
                        td { code { (t.display_prefix) "…" } }
                        td { (when(Some(t.created))) }
                        td { (when(t.last_used)) }
                        td { @match t.expires { Some(e) => (e.to_human()), None => "when rotated" } }
                    }
                }
            }
        }
    }
}

fn rules() -> Markup {
    markup! {
        h2 { "What Okta sends" }
        p #rules {
            "Each member's " strong { "userName" } " must be their email address: it is how they sign in, "
            "and the part after the @ must be one of your verified email domains. Set the "
            strong { "role" } " attribute (in Okta, the app's \"Role\" profile attribute, sent as "
            code { "roles" } ") to one of super_admin, admin, backup_operator, auditor or read_only; "
            "without it a member is read_only, and a role sent by Okta overwrites one set in the console."
        }
    }
}

pub(super) async fn page(
    State(s): State<ConsoleState>,
    who: Member<ManageSsoScim>,
    headers: HeaderMap,
) -> ApiResult<ConsolePage> {
    let tokens = s.tokens.live_tokens(&who.tenant).await?;
    let max_hours = MAX_OVERLAP_SECS / 3600;
    let content = markup! {
        (copy_field("scim-base-url", "SCIM base URL", &scim_base_url(&s.base_url, &headers)))
        @if tokens.is_empty() {
            p #no-token { "No SCIM token yet: generate one, then paste it into Okta (Provisioning, Integration, API token)." }
            form method="post" action="/console/scim/token" {
                (csrf_field(&who.csrf))
                input type="hidden" name="mode" value="immediate";
                button type="submit" #generate { "Generate token" }
            }
        } @else {
            (tokens_table(&tokens))
            h2 { "Rotate Token" }
            form method="post" action="/console/scim/token" #rotate-form {
                (csrf_field(&who.csrf))
                fieldset {
                    legend { "When does the current token stop working?" }
                    input type="radio" name="mode" value="overlap" id="mode-overlap" checked;
                    label.inline for="mode-overlap" { "When the new token is first used, or after the overlap below" }
                    br;
                    input type="radio" name="mode" value="immediate" id="mode-immediate";
                    label.inline for="mode-immediate" { "At once (a lost or leaked token)" }
                    label for="overlap-hours" { "Overlap, in hours (at most " (max_hours) ")" }
                    input type="number" name="overlap_hours" id="overlap-hours" min="1" max=(max_hours) value=(DEFAULT_OVERLAP_HOURS);
                }
                button type="submit" #rotate { "Rotate Token" }
            }
        }
        (rules())
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Scim), TITLE, content)))
}

/// `POST /console/scim/token` (`mode=immediate|overlap`, `overlap_hours`): issues the first
/// token or rotates, and shows the new token this once.
pub(super) async fn rotate(State(s): State<ConsoleState>, posted: Posted<ManageSsoScim>) -> ApiResult<ConsolePage> {
    let Posted { member: who, form } = posted;
    let immediate = match form.text("mode") {
        "immediate" => true,
        "overlap" | "" => false,
        _ => return Err(ApiError::invalid_request("choose when the current token stops working")),
    };
    let hours = match form.text("overlap_hours").trim() {
        "" => None,
        h => Some(h.parse::<f64>().map_err(|_| ApiError::invalid_request("the overlap must be a number of hours"))?),
    };
    let mode = RotationMode::requested(immediate, hours).map_err(ApiError::invalid_request)?;
    let issued = s.tokens.rotate_token_as(&who.tenant, mode, &Actor::User(who.user.id)).await?;
    let content = markup! {
        (notice("warn", "Copy this token now and paste it into Okta: it is shown this once and cannot be shown again. Anyone holding it can provision members."))
        div.secret {
            (copy_field("new-token", "New SCIM token", issued.token.secret().expose()))
        }
        @if let Some(old) = &issued.overlapped {
            p #overlap { "The previous token (" code { (old.display_prefix) "…" } ") keeps working until this one is first used, or until " (when(old.expires)) " at the latest." }
        } @else if issued.ended > 0 {
            p #overlap { "The previous token stopped working." }
        }
        p { a href="/console/scim" { "Back to SCIM provisioning" } }
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Scim), "New SCIM token", content)))
}
