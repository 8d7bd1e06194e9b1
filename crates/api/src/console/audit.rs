//! `GET /console/audit`: the audit trail for people — times in words, members by name —
//! filtered by kind of event and by member, paged by cursor; `GET /console/audit.csv`: the
//! same events as CSV, every cell safe to open in a spreadsheet.

use super::layout::{page as layout, Section};
use super::{enc, html, query_value, ConsoleState};
use crate::error::{ApiError, ApiResult, ConsolePage};
use crate::extract::{Member, ViewAuditTrail};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use butterfly_core::audit::{AuditAction, AuditFilter, NamedEvent};
use butterfly_core::email::UserName;
use maud::html as markup;

const PAGE_SIZE: usize = 50;
/// The most events one CSV export holds.
pub const EXPORT_MAX: usize = 5_000;

/// The filter of the query string (`kind`, `member` as an email), parsed here.
fn filter_of(uri: &Uri) -> Result<(AuditFilter, Option<String>, Option<String>), ApiError<ConsolePage>> {
    let kind = query_value(uri, "kind");
    let member = query_value(uri, "member");
    let action = match kind.as_deref() {
        Some(k) => Some(AuditAction::parse(k).ok_or_else(|| ApiError::invalid_request("unknown kind of event"))?),
        None => None,
    };
    let member_ref = match member.as_deref() {
        Some(m) => {
            Some(UserName::parse(m).map_err(|_| ApiError::invalid_request("filter by a member's email address"))?)
        }
        None => None,
    };
    Ok((AuditFilter { action, member: member_ref }, kind, member))
}

/// The details of an event as one line of text.
fn details(e: &NamedEvent) -> String {
    match &e.event.details {
        serde_json::Value::Null => String::new(),
        d => d.to_string(),
    }
}

pub(super) async fn page(
    State(s): State<ConsoleState>,
    who: Member<ViewAuditTrail>,
    uri: Uri,
) -> ApiResult<ConsolePage> {
    let (filter, kind, member) = filter_of(&uri)?;
    let events = s.audit.page(&who.tenant, query_value(&uri, "before").as_deref(), PAGE_SIZE, &filter).await?;
    let keep = |extra: &str| {
        let mut q: Vec<String> = vec![];
        if let Some(k) = &kind {
            q.push(format!("kind={}", enc(k)));
        }
        if let Some(m) = &member {
            q.push(format!("member={}", enc(m)));
        }
        if !extra.is_empty() {
            q.push(extra.to_string());
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    };
    let content = markup! {
        form method="get" action="/console/audit" role="search" #filter {
            label for="kind" { "Kind of event" }
            select name="kind" id="kind" {
                option value="" { "All events" }
                @for a in AuditAction::ALL {
                    option value=(a.as_str()) selected[Some(a) == filter.action] { (a.label()) }
                }
            }
            label for="member" { "Member (email)" }
            input type="email" name="member" id="member" value=[member.as_deref()];
            button type="submit" { "Filter" }
        }
        p { a #csv href=(format!("/console/audit.csv{}", keep(""))) { "Download as CSV" } " (up to " (EXPORT_MAX) " events)" }
        @if events.events.is_empty() {
            p #empty { "No events." }
        } @else {
            table #events {
                caption { "Events, newest first" }
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "By" }
                    th scope="col" { "Concerning" } th scope="col" { "Outcome" } th scope="col" { "Details" }
                } }
                tbody {
                    @for e in &events.events {
                        tr {
                            td { time datetime=(e.event.at.to_rfc3339()) { (e.event.at.to_human()) } }
                            td { (e.event.action.label()) }
                            td { (e.actor) }
                            td { (e.target.as_deref().unwrap_or("—")) }
                            td { (e.event.outcome) }
                            td { code { (details(e)) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if query_value(&uri, "before").is_some() { a href=(format!("/console/audit{}", keep(""))) { "Newest" } }
            @if let Some(n) = &events.next { a #older href=(format!("/console/audit{}", keep(&format!("before={}", enc(n))))) { "Older events" } }
        }
    };
    Ok(html(StatusCode::OK, layout(&who.user, Some(&who.csrf), Some(Section::Audit), "Audit", content)))
}

/// One CSV cell: always quoted, quotes doubled, and a leading `=`, `+`, `-`, `@`, tab or
/// carriage return neutralised with a `'` so a spreadsheet reads it as text, not a formula
/// (OWASP CSV injection).
pub fn csv_cell(v: &str) -> String {
    let guarded = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_string() };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

pub(super) async fn csv(
    State(s): State<ConsoleState>,
    who: Member<ViewAuditTrail>,
    uri: Uri,
) -> ApiResult<ConsolePage> {
    let (filter, _, _) = filter_of(&uri)?;
    let events = s.audit.export(&who.tenant, &filter, EXPORT_MAX).await?;
    let mut out = String::from("time,event,outcome,actor,actor_id,target,target_id,details\r\n");
    for e in &events {
        let cells = [
            e.event.at.to_rfc3339(),
            e.event.action.as_str().to_string(),
            e.event.outcome.clone(),
            e.actor.clone(),
            e.event.actor.clone(),
            e.target.clone().unwrap_or_default(),
            e.event.target.clone().unwrap_or_default(),
            details(e),
        ];
        out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let mut resp = out.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"butterfly-audit.csv\""));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(crate::auth_response::no_store(resp))
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("a \"b\", c"), "\"a \"\"b\"\", c\"");
        for f in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            let c = csv_cell(f);
            assert!(c.starts_with("\"'"), "{f:?} -> {c}");
        }
        assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
    }
}
