//! The RFC 7644 §3.4.2.2 filter grammar: parser, evaluator and index planner.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / "not" "(" FILTER ")" / "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]" [ "." subAttr SP compareOp SP compValue / "." subAttr SP "pr" ]
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! compValue = false / null / true / number / string
//! ```
//! Attribute names, operators and keywords are case-insensitive; `and` binds tighter than `or`.
//! Everything is checked against the schema when parsed, so an unsupported filter is a 400
//! even on an empty tenant, and never silently matches everything.

use super::path::{parse_attr_path, AttrPath};
use super::schema::{find_sub, AttrDef, Kind, SchemaId};
use crate::clock::Timestamp;
use crate::email::fold;
use serde_json::Value;
use std::cmp::Ordering;

const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Num(f64),
    Null,
}

/// Where a comparison looks: a top-level path, or a sub-attribute of the element being
/// tested inside `attr[...]`.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Path(AttrPath),
    Element(&'static AttrDef),
}

impl Target {
    fn leaf(&self) -> &'static AttrDef {
        match self {
            Target::Path(p) => p.leaf(),
            Target::Element(d) => d,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(Target),
    Compare(Target, Op, Literal),
    /// `attr[inner]`: some element of a multi-valued complex attribute satisfies `inner`.
    Any(AttrPath, Box<Filter>),
}

/// A point lookup the store can answer without scanning the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Case-folded `userName`.
    UserName(String),
    ExternalId(String),
    Id(String),
}

impl Lookup {
    /// Whether `u` is what this lookup asks for, by the attribute's own rule (`userName` folded,
    /// `externalId` and `id` exact): for a filter that is exactly this one comparison, the same
    /// answer as [`Filter::matches`] on the user's document, without rendering it.
    pub fn holds_for(&self, u: &crate::user::User) -> bool {
        match self {
            Lookup::UserName(folded) => u.user_name.folded() == folded,
            Lookup::ExternalId(e) => u.external_id.as_deref() == Some(e.as_str()),
            Lookup::Id(id) => u.id.to_string() == *id,
        }
    }
}

type PResult<T> = Result<T, String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `.sub` right after `]`.
    SubAttr(String),
    Word(String),
    Str(String),
}

fn lex(input: &str) -> PResult<Vec<Tok>> {
    // Characters with their byte offsets: tokens are taken as slices of the input.
    let mut chars: Vec<(usize, char)> = Vec::with_capacity(input.len());
    chars.extend(input.char_indices());
    let at = |i: usize| chars.get(i).map_or(input.len(), |&(b, _)| b);
    let mut out = Vec::with_capacity(8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
                if i < chars.len() && chars[i].1 == '.' {
                    let start = i + 1;
                    i += 1;
                    while i < chars.len() && is_word_char(chars[i].1) {
                        i += 1;
                    }
                    if start == i {
                        return Err("expected a sub-attribute name after '].'".into());
                    }
                    out.push(Tok::SubAttr(input[at(start)..at(i)].to_string()));
                }
            }
            '"' => {
                // A JSON string: find its end honouring escapes, then let serde decode it.
                let start = i;
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i].1 {
                        '\\' => i += 2,
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if !closed {
                    return Err("a string value is not closed with '\"'".into());
                }
                let raw = &input[at(start)..at(i.min(chars.len()))];
                let s: String = if raw.bytes().all(|b| b >= 0x20 && b != b'\\') {
                    // No escape and no control character: the JSON string is its content.
                    raw[1..raw.len() - 1].to_string()
                } else {
                    serde_json::from_str(raw).map_err(|_| format!("the string value {raw} is not valid JSON"))?
                };
                out.push(Tok::Str(s));
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i].1) {
                    i += 1;
                }
                out.push(Tok::Word(input[at(start)..at(i)].to_string()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.' | '+')
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    /// Takes the next token (the parser never steps back, so it is moved out, not cloned).
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get_mut(self.pos).map(|t| std::mem::replace(t, Tok::LParen));
        self.pos += 1;
        t
    }
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self, scope: Option<&'static AttrDef>) -> PResult<Filter> {
        self.enter()?;
        let mut left = self.and(scope)?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.and(scope)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self, scope: Option<&'static AttrDef>) -> PResult<Filter> {
        let mut left = self.not(scope)?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.not(scope)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, scope: Option<&'static AttrDef>) -> PResult<Filter> {
        if self.peek_keyword("not") {
            self.pos += 1;
            if self.next() != Some(Tok::LParen) {
                return Err("'not' must be followed by '('".into());
            }
            let inner = self.or(scope)?;
            if self.next() != Some(Tok::RParen) {
                return Err("missing ')' after 'not ('".into());
            }
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.atom(scope)
    }

    fn atom(&mut self, scope: Option<&'static AttrDef>) -> PResult<Filter> {
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or(scope)?;
                if self.next() != Some(Tok::RParen) {
                    return Err("missing ')'".into());
                }
                Ok(inner)
            }
            Some(Tok::Word(w)) => self.attr_exp(&w, scope),
            Some(t) => Err(format!("expected an attribute name, found {}", describe(&t))),
            None => Err("the filter ends where an expression was expected".into()),
        }
    }

    fn attr_exp(&mut self, name: &str, scope: Option<&'static AttrDef>) -> PResult<Filter> {
        let target = match scope {
            Some(parent) => {
                let d =
                    find_sub(parent, name).ok_or_else(|| format!("{:?} has no sub-attribute {name:?}", parent.name))?;
                Target::Element(d)
            }
            None => Target::Path(parse_attr_path(name)?),
        };
        if self.peek() == Some(&Tok::LBracket) {
            let Target::Path(path) = target else {
                return Err("value filters cannot be nested".into());
            };
            if !(path.attr.multi && path.attr.kind == Kind::Complex) || path.sub.is_some() {
                return Err(format!("{:?} is not a multi-valued complex attribute and cannot take '[...]'", name));
            }
            self.pos += 1;
            let inner = self.or(Some(path.attr))?;
            if self.next() != Some(Tok::RBracket) {
                return Err("missing ']'".into());
            }
            if let Some(Tok::SubAttr(sub)) = self.peek().cloned() {
                self.pos += 1;
                let d = find_sub(path.attr, &sub)
                    .ok_or_else(|| format!("{:?} has no sub-attribute {sub:?}", path.attr.name))?;
                let tail = self.op_tail(Target::Element(d))?;
                return Ok(Filter::Any(path, Box::new(Filter::And(Box::new(inner), Box::new(tail)))));
            }
            return Ok(Filter::Any(path, Box::new(inner)));
        }
        self.op_tail(target)
    }

    fn op_tail(&mut self, target: Target) -> PResult<Filter> {
        let op_word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(t) => return Err(format!("expected an operator, found {}", describe(&t))),
            None => return Err("the filter ends where an operator was expected".into()),
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(target));
        }
        let op = Op::parse(&op_word)
            .ok_or_else(|| format!("unknown operator {op_word:?} (supported: eq ne co sw ew gt ge lt le pr)"))?;
        let lit = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Tok::Word(w)) => match w.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Num(n),
                _ => return Err(format!("{w:?} is not a value: quote strings with '\"'")),
            },
            Some(t) => return Err(format!("expected a value, found {}", describe(&t))),
            None => return Err("the filter ends where a value was expected".into()),
        };
        check_comparable(target.leaf(), op, &lit)?;
        Ok(Filter::Compare(target, op, lit))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::SubAttr(s) => format!("'.{s}'"),
        Tok::Word(w) => format!("{w:?}"),
        Tok::Str(s) => format!("the string {s:?}"),
    }
}

fn check_comparable(def: &AttrDef, op: Op, lit: &Literal) -> PResult<()> {
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    if *lit == Literal::Null {
        return if matches!(op, Op::Eq | Op::Ne) {
            Ok(())
        } else {
            Err("null can only be compared with eq or ne".into())
        };
    }
    match def.kind {
        Kind::Complex => {
            if def.multi && def.sub.iter().any(|s| s.name == "value") {
                // `emails eq "x"` compares the `value` sub-attribute (RFC 7644 §3.4.2.2).
                check_comparable(&def.sub[0], op, lit)
            } else {
                Err(format!(
                    "{:?} is complex: compare one of its sub-attributes, e.g. {}.{}",
                    def.name,
                    def.name,
                    def.sub.first().map(|s| s.name).unwrap_or("value")
                ))
            }
        }
        Kind::Boolean => match lit {
            Literal::Bool(_) if !ordering && !substring => Ok(()),
            Literal::Str(s) if !ordering && !substring && parse_bool(s).is_some() => Ok(()),
            _ => Err(format!("{:?} is a boolean: use eq or ne with true or false", def.name)),
        },
        Kind::DateTime => match lit {
            Literal::Str(s) if substring || Timestamp::parse_rfc3339(s).is_some() => Ok(()),
            _ => Err(format!("{:?} is a dateTime: compare it with an RFC 3339 string", def.name)),
        },
        Kind::String | Kind::Reference => match lit {
            Literal::Str(_) => Ok(()),
            _ => Err(format!("{:?} is a string: quote the value", def.name)),
        },
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses a top-level filter (as in `GET /Users?filter=`).
pub fn parse(input: &str) -> PResult<Filter> {
    parse_scoped(input, None)
}

/// Parses a value filter inside `attr[...]` (as in PATCH paths), relative to `parent`.
pub fn parse_scoped(input: &str, parent: Option<&'static AttrDef>) -> PResult<Filter> {
    if input.len() > MAX_FILTER_LEN {
        return Err(format!("the filter is longer than {MAX_FILTER_LEN} characters"));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err("the filter is empty".into());
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let f = p.or(parent)?;
    if let Some(t) = p.peek() {
        return Err(format!(
            "unexpected {} after a complete expression (combine expressions with 'and' or 'or')",
            describe(t)
        ));
    }
    Ok(f)
}

impl Filter {
    /// Evaluates against a SCIM JSON document (top-level) or element (inside `[...]`).
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(doc) && b.matches(doc),
            Filter::Or(a, b) => a.matches(doc) || b.matches(doc),
            Filter::Not(a) => !a.matches(doc),
            Filter::Present(t) => values_at(doc, t).iter().any(|v| is_present(v)),
            Filter::Compare(t, op, lit) => {
                let vals = values_at(doc, t);
                match (op, lit) {
                    (Op::Eq, Literal::Null) => !vals.iter().any(|v| is_present(v)),
                    (Op::Ne, Literal::Null) => vals.iter().any(|v| is_present(v)),
                    (Op::Ne, _) => !vals.iter().any(|v| compare(t.leaf(), v, Op::Eq, lit)),
                    _ => vals.iter().any(|v| compare(t.leaf(), v, *op, lit)),
                }
            }
            Filter::Any(path, inner) => {
                let Some(arr) = attr_value(doc, path).and_then(Value::as_array) else {
                    return false;
                };
                arr.iter().any(|e| inner.matches(e))
            }
        }
    }

    /// The lookup this filter is, when it is nothing but one (`userName eq "…"`, Okta's lookup):
    /// its matches are then exactly the users [`Lookup::holds_for`] accepts.
    pub fn single_lookup(&self) -> Option<Lookup> {
        match self {
            Filter::Compare(..) => self.lookups().and_then(|mut l| if l.len() == 1 { l.pop() } else { None }),
            _ => None,
        }
    }

    /// The point lookups that together cover every match, if the filter allows it: an `eq`
    /// on `userName`, `externalId` or `id` in every branch of a top-level `or`.
    pub fn lookups(&self) -> Option<Vec<Lookup>> {
        match self {
            Filter::Compare(Target::Path(p), Op::Eq, Literal::Str(s))
                if p.schema == SchemaId::Core && p.sub.is_none() =>
            {
                match p.attr.name {
                    "userName" => Some(vec![Lookup::UserName(fold(s))]),
                    "externalId" => Some(vec![Lookup::ExternalId(s.clone())]),
                    "id" => Some(vec![Lookup::Id(s.clone())]),
                    _ => None,
                }
            }
            Filter::And(a, b) => a.lookups().or_else(|| b.lookups()),
            Filter::Or(a, b) => {
                let mut l = a.lookups()?;
                l.extend(b.lookups()?);
                Some(l)
            }
            _ => None,
        }
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn attr_value<'a>(doc: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    match path.schema {
        SchemaId::Core => doc.get(path.attr.name),
        SchemaId::Butterfly => doc.get(path.schema.urn())?.get(path.attr.name),
    }
}

/// The values a target designates, flattening multi-valued attributes.
fn values_at<'a>(doc: &'a Value, t: &Target) -> Vec<&'a Value> {
    match t {
        Target::Element(d) => doc.get(d.name).into_iter().collect(),
        Target::Path(p) => {
            let Some(v) = attr_value(doc, p) else {
                return vec![];
            };
            let sub = p.sub.map(|s| s.name).or_else(|| {
                // `emails eq "x"` compares each element's `value`.
                (p.attr.multi && p.attr.kind == Kind::Complex).then_some("value")
            });
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            match sub {
                Some(s) => items.into_iter().filter_map(|i| i.get(s)).collect(),
                None => items,
            }
        }
    }
}

fn compare(def: &AttrDef, v: &Value, op: Op, lit: &Literal) -> bool {
    let def = if def.kind == Kind::Complex { def.sub.first().unwrap_or(def) } else { def };
    match (def.kind, v, lit) {
        (Kind::Boolean, Value::Bool(b), Literal::Bool(l)) => matches!(op, Op::Eq) && b == l,
        (Kind::Boolean, Value::Bool(b), Literal::Str(s)) => matches!(op, Op::Eq) && parse_bool(s) == Some(*b),
        (Kind::DateTime, Value::String(s), Literal::Str(l)) if !matches!(op, Op::Co | Op::Sw | Op::Ew) => {
            match (Timestamp::parse_rfc3339(s), Timestamp::parse_rfc3339(l)) {
                (Some(a), Some(b)) => ordered(a.cmp(&b), op),
                _ => false,
            }
        }
        (_, Value::String(s), Literal::Str(l)) => {
            let (a, b) = if def.case_exact { (s.clone(), l.clone()) } else { (fold(s), fold(l)) };
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                _ => ordered(a.cmp(&b), op),
            }
        }
        _ => false,
    }
}

fn ordered(o: Ordering, op: Op) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string value without escapes is taken as it is; with escapes (or a raw control
    /// character, which JSON forbids) it goes through the JSON decoder: both give what the JSON
    /// decoder alone gave.
    #[test]
    fn string_values_decode_as_json_strings() {
        let cases = [
            (r#""ann@example.com""#, Some("ann@example.com")),
            (r#""""#, Some("")),
            (r#""café ü""#, Some("café ü")),
            (r#""a\"b""#, Some("a\"b")),
            (r#""back\\slash""#, Some("back\\slash")),
            (r#""\u00e9t\u00e9""#, Some("été")),
            ("\"tab\tinside\"", None),
            ("\"nul\u{1}\"", None),
            (r#""bad \x escape""#, None),
            ("\"del\u{7f}\"", Some("del\u{7f}")),
        ];
        for (literal, want) in cases {
            let by_json: Option<String> = serde_json::from_str(literal).ok();
            assert_eq!(by_json.as_deref(), want, "the case itself: {literal}");
            let lexed = lex(&format!("userName eq {literal}"));
            match want {
                Some(w) => assert_eq!(lexed.unwrap().last(), Some(&Tok::Str(w.to_string())), "{literal}"),
                None => assert!(lexed.is_err(), "{literal}"),
            }
        }
        assert_eq!(
            lex("emails[type eq \"work\"].value pr").unwrap(),
            vec![
                Tok::Word("emails".into()),
                Tok::LBracket,
                Tok::Word("type".into()),
                Tok::Word("eq".into()),
                Tok::Str("work".into()),
                Tok::RBracket,
                Tok::SubAttr("value".into()),
                Tok::Word("pr".into()),
            ]
        );
        assert_eq!(lex("ünïcode eq 1").unwrap()[0], Tok::Word("ünïcode".into()));
    }
}
