//! The shared layout: the navigation (only the pages the member's role allows), who is signed
//! in with the sign-out button, and the page's `<main>`; plus the 403 and refusal pages and
//! the small pieces pages share (a value with its copy button, times).

use super::html;
use crate::extract::{AnyRole, ManageSsoScim, ManageTeam, Requires, ViewAuditTrail};
use axum::http::StatusCode;
use axum::response::Response;
use butterfly_core::clock::Timestamp;
use butterfly_core::role::Role;
use butterfly_core::team::member_label;
use butterfly_core::token::Secret;
use butterfly_core::user::User;
use maud::{html as markup, Markup, DOCTYPE};

/// The console's pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Sso,
    Scim,
    Team,
    Audit,
}

impl Section {
    pub const ALL: [Section; 5] = [Section::Overview, Section::Sso, Section::Scim, Section::Team, Section::Audit];

    pub fn path(self) -> &'static str {
        match self {
            Section::Overview => "/console",
            Section::Sso => "/console/sso",
            Section::Scim => "/console/scim",
            Section::Team => "/console/team",
            Section::Audit => "/console/audit",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Sso => "Single Sign-On",
            Section::Scim => "SCIM provisioning",
            Section::Team => "Team",
            Section::Audit => "Audit",
        }
    }

    /// Whether `role` may open the page: the rule of the page's `Member<P>`.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Section::Overview => AnyRole::allows(role),
            Section::Sso | Section::Scim => ManageSsoScim::allows(role),
            Section::Team => ManageTeam::allows(role),
            Section::Audit => ViewAuditTrail::allows(role),
        }
    }
}

/// A whole page: `title` heads it; `csrf` signs the sign-out form.
pub(crate) fn page(
    user: &User,
    csrf: Option<&Secret>,
    active: Option<Section>,
    title: &str,
    content: Markup,
) -> Markup {
    let role = user.effective_role();
    markup! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { "Butterfly console" }
                    nav aria-label="Console" {
                        ul {
                            @for s in Section::ALL.into_iter().filter(|s| s.allows(role)) {
                                li {
                                    a href=(s.path()) aria-current=[(Some(s) == active).then_some("page")] { (s.label()) }
                                }
                            }
                        }
                    }
                    div.who {
                        span #who { (member_label(user)) " · " (role.display_name()) }
                        @if let Some(csrf) = csrf {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf.expose());
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The 403 page: what the member's role allows, and who can grant more.
pub(crate) fn forbidden(user: &User, super_admins: &[String]) -> Response {
    let role = user.effective_role();
    let content = markup! {
        p.msg role="alert" {
            "Your role, " strong { (role.display_name()) } ", does not allow this page."
        }
        (who_grants(super_admins))
        p { a href="/console" { "Back to the overview" } }
    };
    html(StatusCode::FORBIDDEN, page(user, None, None, "Not allowed", content))
}

/// Who can change a member's role.
pub(crate) fn who_grants(super_admins: &[String]) -> Markup {
    markup! {
        @if super_admins.is_empty() {
            p #grant { "Ask a super_admin of your team to change your role." }
        } @else {
            p #grant { "Ask a super_admin of your team to change your role:" }
            ul #super-admins { @for n in super_admins { li { (n) } } }
        }
    }
}

/// A refused write (CSRF, another site, an unreadable form): a page of its own, as the
/// refusal comes before the member is known.
pub(crate) fn refused(message: &str) -> Response {
    bare(StatusCode::FORBIDDEN, "Request refused", message)
}

/// The `<head>` of every console page: the title, the stylesheet and, where the page has copy
/// buttons, the script that reveals them (both served from this site, as the CSP requires).
fn head(title: &str, with_script: bool) -> Markup {
    markup! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width,initial-scale=1";
            title { (title) " · Butterfly console" }
            link rel="stylesheet" href="/console/static/console.css";
            @if with_script {
                script src="/console/static/console.js" defer {}
            }
        }
    }
}

/// A page without the navigation (errors, refusals): a heading, the message, a way back.
pub(crate) fn bare(status: StatusCode, title: &str, message: &str) -> Response {
    let body = markup! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body {
                main #main {
                    h1 { (title) }
                    p.msg role="alert" { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            }
        }
    };
    html(status, body)
}

/// A value the admin pastes elsewhere: a labelled read-only field and its copy button (shown
/// by the script; without it, the field is selectable).
pub(crate) fn copy_field(id: &str, label: &str, value: &str) -> Markup {
    markup! {
        div.copy {
            label for=(id) { (label) }
            input type="text" id=(id) readonly value=(value);
            button type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

/// A time for people, or a dash.
pub(crate) fn when(t: Option<Timestamp>) -> String {
    t.map(Timestamp::to_human).unwrap_or_else(|| "—".into())
}

/// The hidden CSRF field of every form.
pub(crate) fn csrf_field(csrf: &Secret) -> Markup {
    markup! { input type="hidden" name="csrf" value=(csrf.expose()); }
}

/// A notice at the top of a page.
pub(crate) fn notice(kind: &str, text: &str) -> Markup {
    let role = if kind == "msg" { "alert" } else { "status" };
    markup! { p class=(format!("msg {kind}")) role=(role) id=(format!("notice-{kind}")) { (text) } }
}
