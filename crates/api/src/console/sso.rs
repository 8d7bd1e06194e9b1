//! `GET /console/sso`: the tenant's single sign-on settings — provider, client ID, the
//! write-only client secret, email domains with their verification state and the TXT record to
//! add, on/off — and the test sign-in. `POST /console/sso` saves them,
//! `POST /console/sso/domains/verify` checks a domain's TXT record now, `POST /console/sso/test`
//! starts a test sign-in in this browser (the current session stays).

use super::layout::{copy_field, csrf_field, notice, page as layout, when, Section};
use super::{enc, html, query_value, see_other, ConsoleState, Posted};
use crate::error::{ApiError, ApiResult, ConsolePage};
use crate::extract::{ManageSsoScim, Member};
use crate::sso::{add_cookie, redirect_uri, transaction_cookie};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use butterfly_core::actor::Actor;
use butterfly_core::sso::SsoError;
use butterfly_core::sso_settings::{verification_name, verification_value, SsoSettingsInput, SsoSettingsView};
use butterfly_core::tenant::{SignInPolicy, VerifiedBy};
use butterfly_core::token::Secret;
use butterfly_core::user::User;
use maud::{html as markup, Markup};

const TITLE: &str = "Single Sign-On";

/// What the settings form shows: the saved settings, or what was just posted.
struct FormValues<'a> {
    issuer: &'a str,
    client_id: &'a str,
    secret_set: bool,
    domains: String,
    enabled: bool,
}

fn settings_form(v: &FormValues<'_>, csrf: &Secret) -> Markup {
    markup! {
        form method="post" action="/console/sso" #sso-form {
            (csrf_field(csrf))
            label for="issuer" { "Okta domain or issuer URL" }
            input type="text" name="issuer" id="issuer" required value=(v.issuer) placeholder="acme.okta.com" autocomplete="off";
            label for="client_id" { "Client ID" }
            input type="text" name="client_id" id="client_id" required value=(v.client_id) autocomplete="off";
            label for="client_secret" { "Client secret" }
            input type="password" name="client_secret" id="client_secret" autocomplete="new-password"
                aria-describedby="secret-hint" required[!v.secret_set];
            p.hint #secret-hint {
                @if v.secret_set { "Set. Leave empty to keep it; it is never shown." } @else { "Not set yet. It is stored write-only." }
            }
            label for="domains" { "Email domains (comma-separated)" }
            input type="text" name="domains" id="domains" value=(v.domains) placeholder="acme.com, acme.co.uk";
            p {
                input type="checkbox" name="enabled" id="enabled" value="1" checked[v.enabled];
                label.inline for="enabled" { "Single sign-on is on" }
            }
            button type="submit" #save { "Save" }
        }
    }
}

fn domains_table(v: &SsoSettingsView, csrf: &Secret) -> Markup {
    markup! {
        @if !v.domain_records.is_empty() {
            h2 { "Email domains" }
            table #domain-table {
                caption { "Each domain routes sign-ins once its DNS TXT record is found" }
                thead { tr { th scope="col" { "Domain" } th scope="col" { "State" } th scope="col" { "DNS record to add" } th scope="col" { "Check" } } }
                tbody {
                    @for (i, r) in v.domain_records.iter().enumerate() {
                        tr {
                            td { (r.domain.as_str()) }
                            td {
                                @match r.verified_by {
                                    Some(VerifiedBy::Dns) => { "verified by DNS " (when(r.verified_at)) }
                                    Some(VerifiedBy::Operator) => { "verified by Butterfly support " (when(r.verified_at)) }
                                    None => { "waiting for DNS" }
                                }
                                @if let Some(e) = &r.last_error { br; span.hint { (e) } }
                            }
                            td {
                                @if let Some(t) = v.verification_token.as_deref() {
                                    (copy_field(&format!("txt-name-{i}"), "TXT name", &verification_name(&r.domain)))
                                    (copy_field(&format!("txt-value-{i}"), "TXT value", &verification_value(t)))
                                }
                            }
                            td {
                                form method="post" action="/console/sso/domains/verify" {
                                    (csrf_field(csrf))
                                    input type="hidden" name="domain" value=(r.domain.as_str());
                                    button type="submit" aria-label=(format!("Verify {} now", r.domain.as_str())) { "Verify now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn test_section(v: &SsoSettingsView, csrf: &Secret) -> Markup {
    markup! {
        h2 #test { "Test sign-in" }
        @if v.issuer.is_some() {
            p {
                "Signs in through your identity provider and shows the claims it sent and each check, "
                "without changing who is signed in here. "
                @if v.issuer_bound_at.is_none() { strong { "Sign-ins through this provider start once a test passes." } }
            }
            form method="post" action="/console/sso/test" {
                (csrf_field(csrf))
                button type="submit" #test-sign-in { "Test sign-in" }
            }
        } @else {
            p { "Save the settings first." }
        }
    }
}

fn policy_form(v: &SsoSettingsView, csrf: &Secret) -> Markup {
    let p = v.sign_in_policy;
    let (imin, imax) = SignInPolicy::IDLE_MINUTES;
    let (amin, amax) = SignInPolicy::ABSOLUTE_MINUTES;
    markup! {
        h2 #policies { "Sign-in policies" }
        form method="post" action="/console/sso/policy" #policy-form {
            (csrf_field(csrf))
            p {
                input type="checkbox" name="jit" id="jit" value="1" checked[p.jit];
                label.inline for="jit" { "Create a member (as read_only) at their first sign-in (just in time)" }
            }
            p.hint { "Off: only members your identity provider provisioned over SCIM can sign in." }
            label for="idle" { "Sign out after this many idle minutes (" (imin) " to " (imax) ")" }
            input type="number" name="idle_minutes" id="idle" min=(imin) max=(imax) value=(p.idle_secs / 60);
            label for="absolute" { "Sign out this many minutes after sign-in (" (amin) " to " (amax) ")" }
            input type="number" name="absolute_minutes" id="absolute" min=(amin) max=(amax) value=(p.absolute_secs / 60);
            p.hint { "New sessions follow these; sessions already running keep theirs." }
            button type="submit" #save-policy { "Save policies" }
        }
    }
}

fn settings_page(user: &User, csrf: &Secret, v: &SsoSettingsView, message: Option<Markup>) -> Markup {
    let values = FormValues {
        issuer: v.issuer.as_ref().map(|i| i.as_str()).unwrap_or(""),
        client_id: v.client_id.as_deref().unwrap_or(""),
        secret_set: v.client_secret_set,
        domains: v.domain_records.iter().map(|r| r.domain.as_str()).collect::<Vec<_>>().join(", "),
        enabled: v.enabled || v.issuer.is_none(),
    };
    let content = markup! {
        @if let Some(m) = message { (m) }
        (settings_form(&values, csrf))
        (domains_table(v, csrf))
        (test_section(v, csrf))
        (policy_form(v, csrf))
    };
    layout(user, Some(csrf), Some(Section::Sso), TITLE, content)
}

pub(super) async fn page(
    State(s): State<ConsoleState>,
    who: Member<ManageSsoScim>,
    uri: Uri,
) -> ApiResult<ConsolePage> {
    let v = s.sso.settings(&who.tenant).await?;
    let saved = query_value(&uri, "policy").map(|_| notice("ok", "Sign-in policies saved."));
    let message = saved.or_else(|| {
        // Only a domain of this tenant is named: a crafted link shows no words of its own.
        let checked = query_value(&uri, "checked")?;
        let record = v.domain_records.iter().find(|r| r.domain.as_str() == checked)?;
        let d = record.domain.as_str();
        Some(if record.is_verified() {
            notice("ok", &format!("{d} is verified."))
        } else {
            notice("warn", &format!("The TXT record of {d} was not found yet. DNS changes can take a while."))
        })
    });
    Ok(html(StatusCode::OK, settings_page(&who.user, &who.csrf, &v, message)))
}

/// `POST /console/sso` (`issuer`, `client_id`, `client_secret`, `domains`, `enabled`).
pub(super) async fn save(State(s): State<ConsoleState>, posted: Posted<ManageSsoScim>) -> ApiResult<ConsolePage> {
    let Posted { member: who, form } = posted;
    let input = SsoSettingsInput {
        issuer: form.text("issuer").to_string(),
        client_id: form.text("client_id").to_string(),
        client_secret: Some(form.text("client_secret")).filter(|c| !c.is_empty()).map(Secret::new),
        domains: Some(form.text("domains").to_string()),
        enabled: form.get("enabled").is_some(),
    };
    match s.sso.configure_as(&who.tenant, input, &Actor::User(who.user.id)).await {
        Ok(v) => {
            let saved = notice("ok", "Saved.");
            Ok(html(StatusCode::OK, settings_page(&who.user, &who.csrf, &v, Some(saved))))
        }
        // The admin's own input, refused: the form again, with what they typed and why.
        Err(SsoError::Settings(m) | SsoError::InvalidInput(m)) => {
            let values = FormValues {
                issuer: form.text("issuer"),
                client_id: form.text("client_id"),
                secret_set: false,
                domains: form.text("domains").to_string(),
                enabled: form.get("enabled").is_some(),
            };
            let content = markup! { (notice("msg", &m)) (settings_form(&values, &who.csrf)) };
            Ok(html(StatusCode::BAD_REQUEST, layout(&who.user, Some(&who.csrf), Some(Section::Sso), TITLE, content)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/sso/policy` (`jit`, `idle_minutes`, `absolute_minutes`).
pub(super) async fn save_policy(
    State(s): State<ConsoleState>,
    posted: Posted<ManageSsoScim>,
) -> ApiResult<ConsolePage> {
    let Posted { member: who, form } = posted;
    let minutes = |name: &str| {
        form.text(name).trim().parse::<i64>().map_err(|_| ApiError::invalid_request("the lifetimes are whole minutes"))
    };
    let policy =
        SignInPolicy::from_minutes(form.get("jit").is_some(), minutes("idle_minutes")?, minutes("absolute_minutes")?)
            .map_err(ApiError::invalid_request)?;
    s.sso.set_sign_in_policy(&who.tenant, policy, &Actor::User(who.user.id)).await?;
    Ok(see_other("/console/sso?policy=saved#policies"))
}

/// `POST /console/sso/domains/verify` (`domain`): looks for its TXT record now.
pub(super) async fn verify_domain(
    State(s): State<ConsoleState>,
    posted: Posted<ManageSsoScim>,
) -> ApiResult<ConsolePage> {
    let Posted { member: who, form } = posted;
    let check = s.domains.verify(&who.tenant, form.text("domain"), &Actor::User(who.user.id)).await?;
    Ok(see_other(&format!("/console/sso?checked={}", enc(check.record.domain.as_str()))))
}

/// `POST /console/sso/test`: to the provider, with this browser's transaction cookie; the
/// callback shows the report and signs nobody in.
pub(super) async fn test_sign_in(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    posted: Posted<ManageSsoScim>,
) -> ApiResult<ConsolePage> {
    let who = posted.member;
    let start = s.sign_in.start_test(&who.user, &redirect_uri(&s.base_url, &headers)).await.map_err(|e| match e {
        SsoError::Settings(m) | SsoError::InvalidInput(m) => {
            ApiError::refused(StatusCode::CONFLICT, "invalid_request", "Test sign-in not possible", m)
        }
        e => e.into(),
    })?;
    let mut resp = see_other(&start.authorize_url);
    add_cookie(&mut resp, transaction_cookie(&s.cookies, &start));
    Ok(resp)
}
