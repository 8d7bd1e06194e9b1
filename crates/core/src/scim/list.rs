//! List queries (`filter`, `startIndex`, `count`, `cursor`, projections) and list responses.

use super::projection::Projection;
use super::LIST_RESPONSE;
use crate::error::Error;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// 1-based index paging (RFC 7644 §3.4.2.4).
    Index { start_index: u64 },
    /// Cursor paging (RFC 9865); `None` asks for the first page.
    Cursor(Option<String>),
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub paging: Paging,
    pub count: u64,
    pub projection: Projection,
}

fn parse_int(name: &str, v: &str) -> Result<i64, Error> {
    v.trim().parse::<i64>().map_err(|_| Error::InvalidValue(format!("{name} must be an integer, not {v:?}")))
}

impl ListQuery {
    /// Reads the decoded query pairs of a list request. Unknown parameters are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ListQuery, Error> {
        let (mut filter, mut start, mut count, mut cursor, mut attrs, mut excluded) =
            (None, None, None, None, None, None);
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_str() {
                "filter" => filter = Some(v.to_string()),
                "startindex" => start = Some(v.to_string()),
                "count" => count = Some(v.to_string()),
                "cursor" => cursor = Some(v.to_string()),
                "attributes" => attrs = Some(v.to_string()),
                "excludedattributes" => excluded = Some(v.to_string()),
                _ => {}
            }
        }
        let count = match count {
            None => DEFAULT_PAGE_SIZE,
            Some(c) => parse_int("count", &c)?.clamp(0, MAX_PAGE_SIZE as i64) as u64,
        };
        let paging = match (cursor, start) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidValue("use either startIndex or cursor, not both".into()));
            }
            (Some(c), None) => Paging::Cursor(Some(c).filter(|c| !c.is_empty())),
            (None, Some(s)) => Paging::Index { start_index: parse_int("startIndex", &s)?.max(1) as u64 },
            (None, None) => Paging::Index { start_index: 1 },
        };
        let filter = filter.map(|f| f.trim().to_string()).filter(|f| !f.is_empty());
        Ok(ListQuery { filter, paging, count, projection: Projection::parse(attrs.as_deref(), excluded.as_deref()) })
    }
}

/// A ListResponse. `start_index` is omitted in cursor mode, `total` when it is unknown.
/// Serialised field by field (the resources too: user documents are written straight, see
/// [`super::doc::UserDoc`]).
pub struct ListResponse<R> {
    resources: Vec<R>,
    total: Option<u64>,
    start_index: Option<u64>,
    next_cursor: Option<String>,
}

pub fn list_response<R: Serialize>(
    resources: Vec<R>,
    total: Option<u64>,
    start_index: Option<u64>,
    next_cursor: Option<String>,
) -> ListResponse<R> {
    ListResponse { resources, total, start_index, next_cursor }
}

impl<R: Serialize> Serialize for ListResponse<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_map(None)?;
        o.serialize_entry("schemas", &[LIST_RESPONSE])?;
        if let Some(t) = self.total {
            o.serialize_entry("totalResults", &t)?;
        }
        o.serialize_entry("itemsPerPage", &self.resources.len())?;
        if let Some(i) = self.start_index {
            o.serialize_entry("startIndex", &i)?;
        }
        if let Some(c) = &self.next_cursor {
            o.serialize_entry("nextCursor", c)?;
        }
        o.serialize_entry("Resources", &self.resources)?;
        o.end()
    }
}

/// `/ServiceProviderConfig`.
pub fn service_provider_config(base: &str, docs_uri: &str) -> Value {
    json!({
        "schemas": [super::SPC_SCHEMA],
        "documentationUri": docs_uri,
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE_SIZE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_PAGE_SIZE,
            "maxPageSize": MAX_PAGE_SIZE,
            "cursorTimeout": super::cursor::CURSOR_TIMEOUT_SECS,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The SCIM token generated in Butterfly, sent as 'Authorization: Bearer <token>'.",
            "documentationUri": docs_uri,
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, Error> {
        ListQuery::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn index_paging_rules() {
        let d = q(&[]).unwrap();
        assert_eq!((d.paging.clone(), d.count), (Paging::Index { start_index: 1 }, DEFAULT_PAGE_SIZE));
        assert_eq!(q(&[("startIndex", "0")]).unwrap().paging, Paging::Index { start_index: 1 });
        assert_eq!(q(&[("startIndex", "-5")]).unwrap().paging, Paging::Index { start_index: 1 });
        assert_eq!(q(&[("count", "-1")]).unwrap().count, 0);
        assert_eq!(q(&[("count", "5000")]).unwrap().count, MAX_PAGE_SIZE);
        assert_eq!(q(&[("COUNT", "7"), ("StartIndex", "3")]).unwrap().count, 7);
        assert!(matches!(q(&[("count", "ten")]), Err(Error::InvalidValue(_))));
        assert!(matches!(q(&[("startIndex", "1.5")]), Err(Error::InvalidValue(_))));
    }

    #[test]
    fn cursor_paging_rules() {
        assert_eq!(q(&[("cursor", "")]).unwrap().paging, Paging::Cursor(None));
        assert_eq!(q(&[("cursor", "abc")]).unwrap().paging, Paging::Cursor(Some("abc".into())));
        assert!(q(&[("cursor", ""), ("startIndex", "1")]).is_err());
        assert_eq!(q(&[("filter", "  ")]).unwrap().filter, None);
    }
}
