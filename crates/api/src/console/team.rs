//! `GET /console/team`: the members with their role, where it came from and their status,
//! found by email or paged; `POST /console/team/{id}/role`: a super_admin changes a role (the
//! last super_admin is kept; a role Okta pushes over SCIM is flagged, as Okta will overwrite it).

use super::layout::{csrf_field, notice, page as layout, when, Section};
use super::{enc, html, query_value, ConsoleState, Posted};
use crate::error::{ApiResult, ConsolePage};
use crate::extract::{ManageTeam, Member};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use butterfly_core::clock::Timestamp;
use butterfly_core::ids::UserId;
use butterfly_core::role::Role;
use butterfly_core::team::{member_label, no_such_member};
use butterfly_core::user::{RoleSource, User};
use maud::{html as markup, Markup};

const PAGE_SIZE: usize = 25;

fn source(u: &User) -> &'static str {
    match u.role_source {
        Some(RoleSource::Scim) => "SCIM (Okta)",
        Some(RoleSource::Jit) => "first sign-in (JIT)",
        Some(RoleSource::Manual) => "manual (console)",
        None => "default",
    }
}

fn row(u: &User, who: &Member<ManageTeam>, last_sign_ins: &[(UserId, Timestamp)]) -> Markup {
    let id = u.id.to_string();
    let last = last_sign_ins.iter().find(|(i, _)| *i == u.id).map(|(_, t)| *t);
    let select_id = format!("role-{id}");
    markup! {
        tr id=(format!("member-{id}")) {
            td { (u.display_name.as_deref().unwrap_or("—")) }
            td { (u.user_name.as_str()) }
            td { (u.effective_role().display_name()) }
            td {
                (source(u))
                @if u.role_source == Some(RoleSource::Scim) {
                    br; span.hint { "Okta manages this role: a change here is overwritten at its next push." }
                }
            }
            td { @if u.active { "active" } @else { "deactivated" } }
            td { (when(last)) }
            td {
                form method="post" action=(format!("/console/team/{id}/role")) {
                    (csrf_field(&who.csrf))
                    label.inline for=(select_id) { "Role of " (member_label(u)) }
                    select name="role" id=(select_id) {
                        @for r in Role::ALL {
                            option value=(r.as_str()) selected[r == u.effective_role()] { (r.display_name()) }
                        }
                    }
                    button type="submit" { "Change" }
                }
            }
        }
    }
}

/// `GET /console/team?email=…` (one member by email) or `?after=…` (the next page).
pub(super) async fn page(State(s): State<ConsoleState>, who: Member<ManageTeam>, uri: Uri) -> ApiResult<ConsolePage> {
    let email = query_value(&uri, "email");
    let after = query_value(&uri, "after");
    let members = async {
        match &email {
            Some(e) => Ok((s.team.find_member(&who.tenant, e).await?.into_iter().collect::<Vec<_>>(), None)),
            None => s.team.members(&who.tenant, after.as_deref(), PAGE_SIZE).await,
        }
    };
    // The team and, beside it, the latest sign-ins the audit trail holds.
    let (members, last_sign_ins) = tokio::join!(members, s.audit.last_sign_ins(&who.tenant));
    let ((members, next), last_sign_ins) = (members?, last_sign_ins?);
    let content = markup! {
        form method="get" action="/console/team" role="search" {
            label for="email" { "Find a member by email" }
            input type="email" name="email" id="email" value=[email.as_deref()];
            button type="submit" { "Find" }
            @if email.is_some() { " " a href="/console/team" { "Show everyone" } }
        }
        @if members.is_empty() {
            p #empty { @if email.is_some() { "No member has that email address." } @else { "No members yet." } }
        } @else {
            table #members {
                caption { "Members" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" }
                    th scope="col" { "Role set by" } th scope="col" { "Status" } th scope="col" { "Last sign-in" }
                    th scope="col" { "Change role" }
                } }
                tbody { @for u in &members { (row(u, &who, &last_sign_ins)) } }
            }
        }
        @if let Some(n) = next {
            nav.pager aria-label="Pages" { a #next href=(format!("/console/team?after={}", enc(&n))) { "Next page" } }
        }
        p.hint { "Roles: " @for (i, r) in Role::ALL.iter().enumerate() { @if i > 0 { " " } strong { (r.display_name()) } " — " (r.description()) } }
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Team), "Team", content)))
}

/// `POST /console/team/{id}/role` (`role`).
pub(super) async fn change_role(
    State(s): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted<ManageTeam>,
) -> ApiResult<ConsolePage> {
    let Posted { member: who, form } = posted;
    let role = Role::from_name(form.text("role"))?;
    let id = UserId::parse(&id).ok_or_else(no_such_member)?;
    let change = s.team.change_role(&who.tenant, &who.user.id, &id, role).await?;
    let content = markup! {
        (notice("ok", &format!("{} is now {}.", member_label(&change.user), change.user.effective_role().display_name())))
        @if let Some(w) = &change.warning { (notice("warn", w)) }
        p { a href="/console/team" { "Back to the team" } }
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Team), "Role changed", content)))
}
