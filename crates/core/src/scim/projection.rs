//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9).

use super::path::{parse_target, PathTarget};
use super::schema::{Returned, SchemaId};
use super::BUTTERFLY_USER_SCHEMA;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Option<Vec<PathTarget>>,
    exclude: Vec<PathTarget>,
}

fn parse_list(s: &str) -> Vec<PathTarget> {
    // Unknown names are ignored: a client asking for an attribute we do not store gets the
    // resource without it, as for any unassigned attribute.
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).filter_map(|p| parse_target(p).ok()).collect()
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        Projection {
            include: attributes.map(parse_list).filter(|l| !l.is_empty()),
            exclude: excluded.map(parse_list).unwrap_or_default(),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Applies the projection to a resource representation.
    pub fn apply(&self, resource: &mut Value) {
        let Value::Object(o) = resource else { return };
        if let Some(include) = &self.include {
            let mut out = Map::new();
            for key in ["schemas", "id"] {
                if let Some(v) = o.remove(key) {
                    out.insert(key.into(), v);
                }
            }
            for t in include {
                copy_target(o, &mut out, t);
            }
            *o = out;
        }
        for t in &self.exclude {
            remove_target(o, t);
        }
    }
}

fn container_key(schema: SchemaId) -> Option<&'static str> {
    match schema {
        SchemaId::Core => None,
        SchemaId::Butterfly => Some(BUTTERFLY_USER_SCHEMA),
    }
}

fn copy_target(from: &Map<String, Value>, to: &mut Map<String, Value>, t: &PathTarget) {
    match t {
        PathTarget::Extension(_) => {
            if let Some(v) = from.get(BUTTERFLY_USER_SCHEMA) {
                to.insert(BUTTERFLY_USER_SCHEMA.into(), v.clone());
            }
        }
        PathTarget::Attr(p) => {
            let (src, dst) = match container_key(p.schema) {
                None => (Some(from), &mut *to),
                Some(k) => {
                    let d = to.entry(k).or_insert_with(|| Value::Object(Map::new()));
                    match d.as_object_mut() {
                        Some(d) => (from.get(k).and_then(Value::as_object), d),
                        None => return,
                    }
                }
            };
            let Some(src) = src else { return };
            let Some(v) = src.get(p.attr.name) else {
                return;
            };
            match p.sub {
                None => {
                    dst.insert(p.attr.name.into(), v.clone());
                }
                Some(sub) => match v {
                    Value::Object(vo) => {
                        if let Some(sv) = vo.get(sub.name) {
                            let e = dst.entry(p.attr.name).or_insert_with(|| Value::Object(Map::new()));
                            if let Some(e) = e.as_object_mut() {
                                e.insert(sub.name.into(), sv.clone());
                            }
                        }
                    }
                    Value::Array(items) => {
                        let picked: Vec<Value> = items
                            .iter()
                            .filter_map(|i| {
                                i.get(sub.name).map(|sv| {
                                    let mut m = Map::new();
                                    m.insert(sub.name.into(), sv.clone());
                                    Value::Object(m)
                                })
                            })
                            .collect();
                        if !picked.is_empty() {
                            dst.insert(p.attr.name.into(), Value::Array(picked));
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    // Drop an extension container left empty.
    if let Some(Value::Object(e)) = to.get(BUTTERFLY_USER_SCHEMA) {
        if e.is_empty() {
            to.remove(BUTTERFLY_USER_SCHEMA);
        }
    }
}

fn remove_target(o: &mut Map<String, Value>, t: &PathTarget) {
    match t {
        PathTarget::Extension(_) => {
            o.remove(BUTTERFLY_USER_SCHEMA);
        }
        PathTarget::Attr(p) => {
            if p.attr.returned == Returned::Always {
                return;
            }
            let container = match container_key(p.schema) {
                None => Some(&mut *o),
                Some(k) => o.get_mut(k).and_then(Value::as_object_mut),
            };
            let Some(c) = container else { return };
            match p.sub {
                None => {
                    c.remove(p.attr.name);
                }
                Some(sub) => match c.get_mut(p.attr.name) {
                    Some(Value::Object(vo)) => {
                        vo.remove(sub.name);
                    }
                    Some(Value::Array(items)) => {
                        for i in items.iter_mut() {
                            if let Some(io) = i.as_object_mut() {
                                io.remove(sub.name);
                            }
                        }
                    }
                    _ => {}
                },
            }
            if let Some(Value::Object(e)) = o.get(BUTTERFLY_USER_SCHEMA) {
                if e.is_empty() {
                    o.remove(BUTTERFLY_USER_SCHEMA);
                }
            }
        }
    }
}
