//! Parser of Kelp's message schema files (`core/schema/*.msg`, format in `core/schema/README.md`).
//!
//! Build-script code: errors are reported as `file:line: message` strings and fail the build.

use std::fmt;

/// An inclusive version range; `max == i16::MAX` stands for "and later".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { min: 1, max: 0 };

    pub fn parse(text: &str) -> Result<Versions, String> {
        let num = |s: &str| {
            s.parse::<i16>()
                .map_err(|_| format!("bad version `{text}`"))
        };
        if let Some(min) = text.strip_suffix('+') {
            Ok(Versions {
                min: num(min)?,
                max: i16::MAX,
            })
        } else if let Some((a, b)) = text.split_once('-') {
            Ok(Versions {
                min: num(a)?,
                max: num(b)?,
            })
        } else {
            let v = num(text)?;
            Ok(Versions { min: v, max: v })
        }
    }

    pub fn is_empty(self) -> bool {
        self.min > self.max
    }

    pub fn intersect(self, other: Versions) -> Versions {
        Versions {
            min: self.min.max(other.min),
            max: self.max.min(other.max),
        }
    }

    pub fn contains_all(self, other: Versions) -> bool {
        other.is_empty() || (self.min <= other.min && self.max >= other.max)
    }
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.max == i16::MAX {
            write!(f, "{}+", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    F64,
    Bool,
    Uuid,
    String,
    Bytes,
    Records,
}

impl Prim {
    fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "i8" => Prim::I8,
            "i16" => Prim::I16,
            "i32" => Prim::I32,
            "i64" => Prim::I64,
            "u16" => Prim::U16,
            "u32" => Prim::U32,
            "f64" => Prim::F64,
            "bool" => Prim::Bool,
            "uuid" => Prim::Uuid,
            "string" => Prim::String,
            "bytes" => Prim::Bytes,
            "records" => Prim::Records,
            _ => return None,
        })
    }

    /// Smallest encoding of one value, used to bound array pre-allocation.
    pub fn min_size(self) -> usize {
        match self {
            Prim::I8 | Prim::Bool => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 => 4,
            Prim::I64 | Prim::F64 => 8,
            Prim::Uuid => 16,
            Prim::String | Prim::Bytes | Prim::Records => 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    Prim(Prim),
    Struct(String),
    Array(Box<Ty>),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
    /// Versions where the field is on the wire (already clipped to the message's versions).
    pub versions: Versions,
    /// Versions where null is allowed (empty when never).
    pub nullable: Versions,
    pub tag: Option<u32>,
    pub default: Option<String>,
    pub line: usize,
}

impl Field {
    pub fn is_nullable_anywhere(&self) -> bool {
        !self.nullable.intersect(self.versions).is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

#[derive(Debug)]
pub struct Api {
    pub file: String,
    pub key: i16,
    pub name: String,
    pub versions: Versions,
    pub flexible: Versions,
    pub advertise_min: i16,
    /// Every struct of each side, top-level message struct first.
    pub request: Vec<StructDef>,
    pub response: Vec<StructDef>,
}

struct Line<'a> {
    no: usize,
    indent: usize,
    words: Vec<&'a str>,
}

pub fn parse_api(file: &str, text: &str) -> Result<Api, String> {
    let err = |no: usize, msg: String| format!("{file}:{no}: {msg}");
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if indent % 2 != 0 || raw.contains('\t') {
            return Err(err(i + 1, "indent by two spaces".into()));
        }
        let words = split_words(trimmed).map_err(|m| err(i + 1, m))?;
        lines.push(Line {
            no: i + 1,
            indent: indent / 2,
            words,
        });
    }

    let mut key = None;
    let mut name = None;
    let mut versions = None;
    let mut flexible = Versions::NONE;
    let mut advertise_min = None;
    let mut sections: Vec<(Side, String, usize, usize)> = Vec::new(); // side, struct name, first, end
    let mut idx = 0;
    while idx < lines.len() {
        let l = &lines[idx];
        if l.indent != 0 {
            return Err(err(l.no, "unexpected indented line".into()));
        }
        let body_start = idx + 1;
        let mut body_end = body_start;
        while body_end < lines.len() && lines[body_end].indent > 0 {
            body_end += 1;
        }
        match l.words.as_slice() {
            ["api", k, n] => {
                key = Some(
                    k.parse::<i16>()
                        .map_err(|_| err(l.no, "bad api key".into()))?,
                );
                name = Some(n.to_string());
            }
            ["versions", v] => versions = Some(Versions::parse(v).map_err(|m| err(l.no, m))?),
            ["flexible", "none"] => flexible = Versions::NONE,
            ["flexible", v] => flexible = Versions::parse(v).map_err(|m| err(l.no, m))?,
            ["advertise-min", v] => {
                advertise_min = Some(
                    v.parse::<i16>()
                        .map_err(|_| err(l.no, "bad version".into()))?,
                )
            }
            ["request"] => sections.push((Side::Request, String::new(), body_start, body_end)),
            ["response"] => sections.push((Side::Response, String::new(), body_start, body_end)),
            ["struct", s, "request"] => {
                sections.push((Side::Request, s.to_string(), body_start, body_end))
            }
            ["struct", s, "response"] => {
                sections.push((Side::Response, s.to_string(), body_start, body_end))
            }
            _ => {
                return Err(err(
                    l.no,
                    format!("unknown directive `{}`", l.words.join(" ")),
                ));
            }
        }
        if !matches!(l.words[0], "request" | "response" | "struct") && body_end != body_start {
            return Err(err(lines[body_start].no, "unexpected indented line".into()));
        }
        idx = body_end;
    }
    let key = key.ok_or_else(|| format!("{file}: missing `api` line"))?;
    let name = name.unwrap_or_default();
    let versions = versions.ok_or_else(|| format!("{file}: missing `versions` line"))?;
    let mut api = Api {
        file: file.to_string(),
        key,
        name: name.clone(),
        versions,
        flexible: flexible.intersect(versions),
        advertise_min: advertise_min.unwrap_or(versions.min),
        request: Vec::new(),
        response: Vec::new(),
    };
    for side in [Side::Request, Side::Response] {
        let mut structs = Vec::new();
        let top_name = format!(
            "{name}{}",
            if side == Side::Request {
                "Request"
            } else {
                "Response"
            }
        );
        let mut seen_top = false;
        for (s, sname, start, end) in &sections {
            if *s != side {
                continue;
            }
            let sname = if sname.is_empty() {
                if seen_top {
                    return Err(format!("{file}: two {side:?} sections"));
                }
                seen_top = true;
                top_name.clone()
            } else {
                sname.clone()
            };
            let mut pos = *start;
            let fields = parse_fields(file, &lines, &mut pos, *end, 1, versions, &mut structs)?;
            structs.push(StructDef {
                name: sname,
                fields,
            });
        }
        if !seen_top {
            return Err(format!(
                "{file}: missing `{}` section",
                if side == Side::Request {
                    "request"
                } else {
                    "response"
                }
            ));
        }
        // Top-level struct first, then the others in order of definition.
        let top = structs.iter().position(|s| s.name == top_name).unwrap_or(0);
        let t = structs.remove(top);
        structs.insert(0, t);
        check_structs(file, &structs, api.flexible)?;
        match side {
            Side::Request => api.request = structs,
            Side::Response => api.response = structs,
        }
    }
    Ok(api)
}

fn parse_fields(
    file: &str,
    lines: &[Line<'_>],
    pos: &mut usize,
    end: usize,
    depth: usize,
    parent: Versions,
    structs: &mut Vec<StructDef>,
) -> Result<Vec<Field>, String> {
    let mut fields = Vec::new();
    while *pos < end && lines[*pos].indent >= depth {
        let l = &lines[*pos];
        let err = |msg: String| format!("{file}:{}: {msg}", l.no);
        if l.indent != depth {
            return Err(err("indented too deep".into()));
        }
        let (name, ty_text) = match l.words.as_slice() {
            [n, t, ..] => (n.to_string(), *t),
            _ => return Err(err("a field needs a name and a type".into())),
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(err(format!("field name `{name}` is not snake_case")));
        }
        let ty = parse_ty(ty_text).ok_or_else(|| err(format!("unknown type `{ty_text}`")))?;
        let mut versions = parent;
        let mut nullable = Versions::NONE;
        let mut tag = None;
        let mut default = None;
        for w in &l.words[2..] {
            if w.starts_with(|c: char| c.is_ascii_digit()) {
                versions = Versions::parse(w).map_err(&err)?.intersect(parent);
            } else if *w == "nullable" {
                nullable = Versions {
                    min: 0,
                    max: i16::MAX,
                };
            } else if let Some(v) = w.strip_prefix("nullable=") {
                nullable = Versions::parse(v).map_err(&err)?;
            } else if let Some(t) = w.strip_prefix("tag=") {
                tag = Some(
                    t.parse::<u32>()
                        .map_err(|_| err(format!("bad tag `{t}`")))?,
                );
            } else if let Some(d) = w.strip_prefix("default=") {
                default = Some(d.to_string());
            } else {
                return Err(err(format!("unknown attribute `{w}`")));
            }
        }
        *pos += 1;
        // Inline struct definition from the indented children.
        let has_children = *pos < end && lines[*pos].indent > depth;
        let struct_name = match &ty {
            Ty::Struct(s) => Some(s.clone()),
            Ty::Array(inner) => match inner.as_ref() {
                Ty::Struct(s) => Some(s.clone()),
                _ => None,
            },
            Ty::Prim(_) => None,
        };
        if has_children {
            let sname =
                struct_name.ok_or_else(|| err("only struct types take indented fields".into()))?;
            let children = parse_fields(file, lines, pos, end, depth + 1, versions, structs)?;
            if structs.iter().any(|s| s.name == sname) {
                return Err(err(format!("struct `{sname}` defined twice")));
            }
            structs.push(StructDef {
                name: sname,
                fields: children,
            });
        }
        fields.push(Field {
            name,
            ty,
            versions,
            nullable,
            tag,
            default,
            line: l.no,
        });
    }
    Ok(fields)
}

fn parse_ty(text: &str) -> Option<Ty> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Some(Ty::Array(Box::new(parse_ty(inner)?)));
    }
    if let Some(p) = Prim::parse(text) {
        return Some(Ty::Prim(p));
    }
    if text.starts_with(|c: char| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Some(Ty::Struct(text.to_string()));
    }
    None
}

/// Splits on white space, keeping `default="a b"` together.
fn split_words(line: &str) -> Result<Vec<&str>, String> {
    let mut words = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let mut end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if let Some(q) = rest[..end].find('"') {
            let close = rest[q + 1..].find('"').ok_or("unclosed quote")?;
            end = q + 1 + close + 1;
        }
        words.push(&rest[..end]);
        rest = &rest[end..];
    }
    Ok(words)
}

fn check_structs(file: &str, structs: &[StructDef], flexible: Versions) -> Result<(), String> {
    for s in structs {
        let mut tags = Vec::new();
        for f in &s.fields {
            let err = |msg: String| format!("{file}:{}: {msg}", f.line);
            let mut t = &f.ty;
            while let Ty::Array(inner) = t {
                t = inner;
            }
            if let Ty::Struct(name) = t
                && !structs.iter().any(|d| &d.name == name)
            {
                return Err(err(format!("struct `{name}` is not defined")));
            }
            if let Some(tag) = f.tag {
                if tags.contains(&tag) {
                    return Err(err(format!("tag {tag} used twice in `{}`", s.name)));
                }
                tags.push(tag);
                if !flexible.contains_all(f.versions) {
                    return Err(err(format!(
                        "tagged field outside the flexible versions ({})",
                        f.versions
                    )));
                }
            }
            if f.default.as_deref() == Some("null") && !f.is_nullable_anywhere() {
                return Err(err("default=null on a field that is never nullable".into()));
            }
        }
    }
    Ok(())
}
