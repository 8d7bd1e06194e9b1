//! Attribute paths (`userName`, `name.givenName`, `urn:…:User:userName`, `urn:…:butterfly:2.0:User:role`).

use super::schema::{find_attr, find_sub, AttrDef, SchemaId};

/// A resolved path to a top-level attribute and, optionally, one of its sub-attributes.
#[derive(Debug, Clone, Copy)]
pub struct AttrPath {
    pub schema: SchemaId,
    pub attr: &'static AttrDef,
    pub sub: Option<&'static AttrDef>,
}

impl AttrPath {
    /// The definition the path ends at.
    pub fn leaf(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }
    pub fn display(&self) -> String {
        let base = match self.schema {
            SchemaId::Core => self.attr.name.to_string(),
            SchemaId::Butterfly => format!("{}:{}", self.schema.urn(), self.attr.name),
        };
        match self.sub {
            Some(s) => format!("{base}.{}", s.name),
            None => base,
        }
    }
}

/// What a path names: an attribute, or a whole extension object.
#[derive(Debug, Clone, Copy)]
pub enum PathTarget {
    Attr(AttrPath),
    Extension(SchemaId),
}

/// Splits a schema URN prefix off a path. Returns the schema and the remainder (which may be
/// empty when the path is just the URN).
pub fn split_urn(path: &str) -> Result<(SchemaId, &str), String> {
    if path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        for schema in [SchemaId::Butterfly, SchemaId::Core] {
            let urn = schema.urn();
            if path.len() >= urn.len()
                && path.is_char_boundary(urn.len())
                && path[..urn.len()].eq_ignore_ascii_case(urn)
            {
                let rest = &path[urn.len()..];
                if rest.is_empty() {
                    return Ok((schema, ""));
                }
                if let Some(r) = rest.strip_prefix(':') {
                    return Ok((schema, r));
                }
            }
        }
        return Err(format!("unknown schema in attribute path {path:?}"));
    }
    Ok((SchemaId::Core, path))
}

/// Parses `[urn:]attr[.sub]` against the schema table.
pub fn parse_target(path: &str) -> Result<PathTarget, String> {
    let (schema, rest) = split_urn(path.trim())?;
    if rest.is_empty() {
        return match schema {
            SchemaId::Butterfly => Ok(PathTarget::Extension(schema)),
            SchemaId::Core => Err(format!("{path:?} names a schema, not an attribute")),
        };
    }
    let (attr_name, sub_name) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let attr = find_attr(schema, attr_name).ok_or_else(|| format!("unknown attribute {attr_name:?}"))?;
    let sub = match sub_name {
        None => None,
        Some(s) => Some(find_sub(attr, s).ok_or_else(|| format!("unknown sub-attribute {s:?} of {:?}", attr.name))?),
    };
    Ok(PathTarget::Attr(AttrPath { schema, attr, sub }))
}

/// Parses a path that must name an attribute (not a whole extension).
pub fn parse_attr_path(path: &str) -> Result<AttrPath, String> {
    match parse_target(path)? {
        PathTarget::Attr(p) => Ok(p),
        PathTarget::Extension(_) => Err(format!("{path:?} names a schema, not an attribute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_case_insensitively_and_with_urns() {
        let p = parse_attr_path("UserName").unwrap();
        assert_eq!(p.attr.name, "userName");
        let p = parse_attr_path("name.FamilyName").unwrap();
        assert_eq!((p.attr.name, p.sub.map(|s| s.name)), ("name", Some("familyName")));
        let p = parse_attr_path("urn:ietf:params:scim:schemas:core:2.0:User:userName").unwrap();
        assert_eq!(p.attr.name, "userName");
        let p = parse_attr_path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
        assert_eq!(p.sub.map(|s| s.name), Some("givenName"));
        let p = parse_attr_path("URN:IETF:params:scim:schemas:extension:butterfly:2.0:User:Role").unwrap();
        assert_eq!((p.schema, p.attr.name), (SchemaId::Butterfly, "role"));
        assert!(matches!(
            parse_target("urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"),
            Ok(PathTarget::Extension(SchemaId::Butterfly))
        ));
        assert!(parse_attr_path("nickName").is_err());
        // Multi-byte characters around the places where prefixes are cut.
        for p in
            ["ééé", "urné", "urn:ietf:params:scim:schemas:core:2.0:Usé", "urn:ietf:params:scim:schemas:core:2.0:User:é"]
        {
            assert!(parse_target(p).is_err(), "{p}");
        }
        assert!(parse_attr_path("name.nickName").is_err());
        assert!(parse_attr_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").is_err());
    }
}
