//! Emits Rust code for the parsed schema: one module per API and the table of all APIs.
//!
//! The generated code leans on the hand-written primitives of `crate::codec::wire`; see that module for
//! the wire rules. Every struct gets `decode` (nom over `&[u8]`, zero-copy `Bytes` slices through `Src`),
//! `encode` (into `BytesMut`) and, in tests, `random` for the round-trip properties.

use crate::schema::{Api, Field, Prim, StructDef, Ty, Versions};
use std::fmt::Write;

pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn ident(name: &str) -> String {
    match name {
        "type" | "match" | "ref" | "self" | "struct" | "enum" | "fn" | "mod" | "loop" | "move"
        | "use" | "where" | "impl" | "in" | "as" | "async" | "await" | "box" | "const"
        | "crate" | "dyn" | "else" | "extern" | "for" | "if" | "let" | "mut" | "pub" | "return"
        | "static" | "super" | "trait" | "true" | "false" | "unsafe" | "while" | "yield"
        | "abstract" | "final" | "override" | "priv" | "try" | "virtual" | "macro" | "typeof"
        | "unsized" | "become" | "do" | "gen" => format!("r#{name}"),
        _ => name.to_string(),
    }
}

/// A Rust boolean expression true when `version` lies in `v`, given the message's own range.
fn cond(v: Versions, all: Versions) -> String {
    let v = v.intersect(all);
    if v.is_empty() {
        return "false".into();
    }
    let lo = v.min > all.min;
    let hi = v.max < all.max;
    match (lo, hi) {
        (false, false) => "true".into(),
        (true, false) => format!("version >= {}", v.min),
        (false, true) => format!("version <= {}", v.max),
        (true, true) if v.min == v.max => format!("version == {}", v.min),
        (true, true) => format!("({} ..= {}).contains(&version)", v.min, v.max),
    }
}

fn prim_rust(p: Prim) -> &'static str {
    match p {
        Prim::I8 => "i8",
        Prim::I16 => "i16",
        Prim::I32 => "i32",
        Prim::I64 => "i64",
        Prim::U16 => "u16",
        Prim::U32 => "u32",
        Prim::F64 => "f64",
        Prim::Bool => "bool",
        Prim::Uuid => "Uuid",
        Prim::String => "KStr",
        Prim::Bytes | Prim::Records => "Bytes",
    }
}

fn base_rust(ty: &Ty) -> String {
    match ty {
        Ty::Prim(p) => prim_rust(*p).into(),
        Ty::Struct(s) => s.clone(),
        Ty::Array(inner) => format!("Vec<{}>", base_rust(inner)),
    }
}

fn field_rust(f: &Field) -> String {
    if f.is_nullable_anywhere() {
        format!("Option<{}>", base_rust(&f.ty))
    } else {
        base_rust(&f.ty)
    }
}

fn zero_expr(ty: &Ty) -> String {
    match ty {
        Ty::Prim(Prim::F64) => "0.0".into(),
        Ty::Prim(Prim::Bool) => "false".into(),
        Ty::Prim(Prim::Uuid) => "Uuid::ZERO".into(),
        Ty::Prim(Prim::String) => "KStr::EMPTY".into(),
        Ty::Prim(Prim::Bytes | Prim::Records) => "Bytes::new()".into(),
        Ty::Prim(_) => "0".into(),
        Ty::Struct(s) => format!("{s}::default()"),
        Ty::Array(_) => "Vec::new()".into(),
    }
}

fn default_expr(f: &Field) -> Result<String, String> {
    let nullable = f.is_nullable_anywhere();
    let wrap = |e: String| if nullable { format!("Some({e})") } else { e };
    let Some(d) = f.default.as_deref() else {
        return Ok(wrap(zero_expr(&f.ty)));
    };
    let bad = || format!("line {}: default `{d}` does not fit the type", f.line);
    if d == "null" {
        return Ok("None".into());
    }
    let e = match &f.ty {
        Ty::Prim(Prim::Bool) if d == "true" || d == "false" => d.to_string(),
        Ty::Prim(Prim::String) if d.starts_with('"') => format!("KStr::from_static({d})"),
        Ty::Prim(Prim::F64) => {
            let v: f64 = d.parse().map_err(|_| bad())?;
            format!("{v:?}")
        }
        Ty::Prim(Prim::I8 | Prim::I16 | Prim::I32 | Prim::I64 | Prim::U16 | Prim::U32) => {
            let v: i64 = if let Some(h) = d.strip_prefix("0x") {
                i64::from_str_radix(h, 16).map_err(|_| bad())?
            } else {
                d.parse().map_err(|_| bad())?
            };
            v.to_string()
        }
        _ => return Err(bad()),
    };
    Ok(wrap(e))
}

/// Expression of type `PResult<'a, T>` decoding a non-null value of `ty` from input `i`.
fn dec_value(ty: &Ty) -> String {
    match ty {
        Ty::Prim(Prim::String) => "w::string(src, i, flex)".into(),
        Ty::Prim(Prim::Bytes | Prim::Records) => "w::bytes(src, i, flex)".into(),
        Ty::Prim(p) => format!("w::{}(i)", prim_fn(*p)),
        Ty::Struct(s) => format!("{s}::decode(src, i, version)"),
        Ty::Array(inner) => format!(
            "w::array(i, flex, {}, |i| {})",
            min_size(inner),
            dec_value(inner)
        ),
    }
}

/// Expression of type `PResult<'a, Option<T>>` decoding a nullable value.
fn dec_nullable(ty: &Ty) -> Result<String, String> {
    Ok(match ty {
        Ty::Prim(Prim::String) => "w::nullable_string(src, i, flex)".into(),
        Ty::Prim(Prim::Bytes | Prim::Records) => "w::nullable_bytes(src, i, flex)".into(),
        Ty::Struct(s) => format!("w::nullable_struct(i, |i| {s}::decode(src, i, version))"),
        Ty::Array(inner) => format!(
            "w::nullable_array(i, flex, {}, |i| {})",
            min_size(inner),
            dec_value(inner)
        ),
        Ty::Prim(p) => return Err(format!("a {p:?} cannot be nullable")),
    })
}

fn prim_fn(p: Prim) -> &'static str {
    match p {
        Prim::I8 => "i8",
        Prim::I16 => "i16",
        Prim::I32 => "i32",
        Prim::I64 => "i64",
        Prim::U16 => "u16",
        Prim::U32 => "u32",
        Prim::F64 => "f64",
        Prim::Bool => "boolean",
        Prim::Uuid => "uuid",
        Prim::String | Prim::Bytes | Prim::Records => {
            unreachable!("length-prefixed types have their own decoders")
        }
    }
}

fn min_size(ty: &Ty) -> usize {
    match ty {
        Ty::Prim(p) => p.min_size(),
        // A struct may encode to nothing in some versions; counting it as one byte still bounds an
        // array's element count by the bytes left, which is what keeps hostile counts cheap.
        Ty::Struct(_) | Ty::Array(_) => 1,
    }
}

/// Expression of type `PResult<'a, FieldType>` for the field at the current version.
fn dec_field(f: &Field, all: Versions) -> Result<String, String> {
    if !f.is_nullable_anywhere() {
        return Ok(dec_value(&f.ty));
    }
    let nullable_here = cond(f.nullable.intersect(f.versions), all);
    let present = f.versions.intersect(all);
    if f.nullable.contains_all(present) {
        return dec_nullable(&f.ty);
    }
    let some = if let Ty::Struct(s) = &f.ty {
        // A struct that is not nullable at this version carries no presence marker.
        format!("{s}::decode(src, i, version)")
    } else {
        dec_value(&f.ty)
    };
    Ok(format!(
        "if {nullable_here} {{ {} }} else {{ {some}.map(|(i, v)| (i, Some(v))) }}",
        dec_nullable(&f.ty)?
    ))
}

/// Statements encoding the non-null value `v` (a reference) of `ty`.
fn enc_value(ty: &Ty, v: &str) -> String {
    match ty {
        Ty::Prim(Prim::String) => format!("w::put_string(buf, {v}, flex)?;"),
        Ty::Prim(Prim::Bytes) => format!("w::put_bytes(buf, {v}, flex)?;"),
        Ty::Prim(Prim::Records) => format!("w::put_records(buf, {v}, flex)?;"),
        Ty::Prim(p) => format!("w::put_{}(buf, *{v});", prim_fn(*p)),
        Ty::Struct(_) => format!("{v}.encode_to(buf, version)?;"),
        Ty::Array(inner) => {
            format!(
                "{{ let a = {v}; w::put_array_len(buf, a.len(), flex)?; for e in a {{ {} }} }}",
                enc_value(inner, "e")
            )
        }
    }
}

fn enc_null(ty: &Ty) -> &'static str {
    match ty {
        Ty::Prim(Prim::String) => "w::put_null_string(buf, flex);",
        Ty::Prim(Prim::Bytes | Prim::Records) | Ty::Array(_) => "w::put_null_bytes(buf, flex);",
        Ty::Struct(_) => "w::put_i8(buf, -1);",
        Ty::Prim(_) => "",
    }
}

fn enc_field(f: &Field, owner: &str, all: Versions) -> String {
    let name = ident(&f.name);
    if !f.is_nullable_anywhere() {
        return format!("{{ let v = &self.{name}; {} }}", enc_value(&f.ty, "v"));
    }
    let nullable_here = cond(f.nullable.intersect(f.versions), all);
    let marker = if matches!(f.ty, Ty::Struct(_)) {
        format!("if {nullable_here} {{ w::put_i8(buf, 1); }} ")
    } else {
        String::new()
    };
    format!(
        "match &self.{name} {{ None if {nullable_here} => {{ {} }} None => return Err(CodecError::NullNotAllowed(\"{owner}.{}\")), Some(v) => {{ {marker}{} }} }}",
        enc_null(&f.ty),
        f.name,
        enc_value(&f.ty, "v")
    )
}

/// Expression producing a random value for tests.
fn rnd_value(ty: &Ty) -> String {
    match ty {
        Ty::Prim(Prim::String) => "g.kstr()".into(),
        Ty::Prim(Prim::Bytes | Prim::Records) => "g.bytes()".into(),
        Ty::Prim(p) => format!("g.{}()", prim_fn(*p)),
        Ty::Struct(s) => format!("{s}::random(g, version)"),
        Ty::Array(inner) => format!("g.vec(|g| {})", rnd_value(inner)),
    }
}

fn emit_struct(out: &mut String, s: &StructDef, api: &Api, is_top: bool) -> Result<(), String> {
    let all = api.versions;
    let has_flex = !api.flexible.is_empty();
    let err = |e: String| format!("{}: {}: {e}", api.file, s.name);
    // Type definition.
    writeln!(out, "#[derive(Clone, Debug, PartialEq)]").unwrap();
    writeln!(out, "pub struct {} {{", s.name).unwrap();
    for f in &s.fields {
        let tag = f
            .tag
            .map(|t| format!(", tagged field {t}"))
            .unwrap_or_default();
        let null = if f.is_nullable_anywhere() {
            format!(", nullable {}", f.nullable.intersect(f.versions))
        } else {
            String::new()
        };
        writeln!(out, "    /// Versions {}{null}{tag}.", f.versions).unwrap();
        writeln!(out, "    pub {}: {},", ident(&f.name), field_rust(f)).unwrap();
    }
    if has_flex {
        writeln!(out, "    /// Tagged fields this version of Kelp does not know, kept to be written back unchanged.").unwrap();
        writeln!(out, "    pub unknown_tagged_fields: Vec<RawTaggedField>,").unwrap();
    }
    writeln!(out, "}}\n").unwrap();

    // Default.
    writeln!(out, "#[allow(clippy::derivable_impls)]").unwrap();
    writeln!(
        out,
        "impl Default for {} {{\n    fn default() -> Self {{\n        Self {{",
        s.name
    )
    .unwrap();
    for f in &s.fields {
        writeln!(
            out,
            "            {}: {},",
            ident(&f.name),
            default_expr(f).map_err(err)?
        )
        .unwrap();
    }
    if has_flex {
        writeln!(out, "            unknown_tagged_fields: Vec::new(),").unwrap();
    }
    writeln!(out, "        }}\n    }}\n}}\n").unwrap();

    writeln!(
        out,
        "#[allow(clippy::bool_comparison, clippy::partialeq_to_none, clippy::collapsible_if)]"
    )
    .unwrap();
    writeln!(out, "impl {} {{", s.name).unwrap();
    // Decode.
    writeln!(
        out,
        "    /// Decodes this struct at `version`, which the caller has checked is supported."
    )
    .unwrap();
    writeln!(
        out,
        "    #[allow(unused_variables, unused_mut, clippy::needless_late_init)]"
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn decode<'a>(src: &Src<'_>, i: &'a [u8], version: i16) -> PResult<'a, Self> {{"
    )
    .unwrap();
    writeln!(out, "        let flex = is_flexible(version);").unwrap();
    writeln!(out, "        let mut i = i;").unwrap();
    writeln!(out, "        let mut this = Self::default();").unwrap();
    for f in s.fields.iter().filter(|f| f.tag.is_none()) {
        let c = cond(f.versions, all);
        let d = dec_field(f, all).map_err(err)?;
        let stmt = format!("(i, this.{}) = {d}?;", ident(&f.name));
        if c == "true" {
            writeln!(out, "        {stmt}").unwrap();
        } else {
            writeln!(out, "        if {c} {{ {stmt} }}").unwrap();
        }
    }
    if has_flex {
        writeln!(out, "        if flex {{").unwrap();
        writeln!(out, "            let count;").unwrap();
        writeln!(out, "            (i, count) = w::uvarint(i)?;").unwrap();
        writeln!(
            out,
            "            let mut last = None;\n            for _ in 0..count {{"
        )
        .unwrap();
        writeln!(out, "                let (tag, data);").unwrap();
        writeln!(
            out,
            "                (i, (tag, data)) = w::tagged_field(i, &mut last)?;"
        )
        .unwrap();
        let known: Vec<&Field> = s.fields.iter().filter(|f| f.tag.is_some()).collect();
        if known.is_empty() {
            writeln!(out, "                this.unknown_tagged_fields.push(RawTaggedField {{ tag, data: src.slice(data) }});").unwrap();
            writeln!(out, "            }}\n        }}").unwrap();
        } else {
            writeln!(out, "                match tag {{").unwrap();
            for f in s.fields.iter().filter(|f| f.tag.is_some()) {
                let c = cond(f.versions, all);
                let guard = if c == "true" {
                    String::new()
                } else {
                    format!(" if {c}")
                };
                writeln!(
                    out,
                    "                    {}{guard} => this.{} = w::exact(data, |i| {})?,",
                    f.tag.unwrap_or_default(),
                    ident(&f.name),
                    dec_field(f, all).map_err(err)?
                )
                .unwrap();
            }
            writeln!(out, "                    _ => this.unknown_tagged_fields.push(RawTaggedField {{ tag, data: src.slice(data) }}),").unwrap();
            writeln!(out, "                }}\n            }}\n        }}").unwrap();
        }
    }
    writeln!(out, "        Ok((i, this))\n    }}\n").unwrap();

    // Encode.
    writeln!(out, "    /// Encodes this struct at `version` into `buf`.").unwrap();
    writeln!(
        out,
        "    pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), CodecError> {{"
    )
    .unwrap();
    writeln!(
        out,
        "        w::EncodeBuf::copying_into(buf, |b| self.encode_to(b, version))\n    }}\n"
    )
    .unwrap();
    writeln!(
        out,
        "    /// Encodes this struct at `version` into `buf`, which may splice record batches in."
    )
    .unwrap();
    writeln!(out, "    #[allow(unused_variables, unused_mut)]").unwrap();
    writeln!(
        out,
        "    pub fn encode_to(&self, buf: &mut w::EncodeBuf, version: i16) -> Result<(), CodecError> {{"
    )
    .unwrap();
    writeln!(out, "        let flex = is_flexible(version);").unwrap();
    for f in s.fields.iter().filter(|f| f.tag.is_none()) {
        let c = cond(f.versions, all);
        let e = enc_field(f, &s.name, all);
        if c == "true" {
            writeln!(out, "        {e}").unwrap();
        } else {
            writeln!(out, "        if {c} {{ {e} }}").unwrap();
        }
    }
    if has_flex {
        writeln!(out, "        if flex {{").unwrap();
        writeln!(
            out,
            "            let mut tagged = w::TaggedWriter::default();"
        )
        .unwrap();
        let mut tagged: Vec<&Field> = s.fields.iter().filter(|f| f.tag.is_some()).collect();
        tagged.sort_by_key(|f| f.tag);
        for f in tagged {
            let c = cond(f.versions, all);
            writeln!(
                out,
                "            if {c} && self.{} != {} {{ let buf = &mut tagged.start({}); {} }}",
                ident(&f.name),
                default_expr(f).map_err(err)?,
                f.tag.unwrap_or_default(),
                enc_field(f, &s.name, all)
            )
            .unwrap();
        }
        writeln!(
            out,
            "            tagged.finish(buf, &self.unknown_tagged_fields)?;"
        )
        .unwrap();
        writeln!(out, "        }}").unwrap();
    }
    writeln!(out, "        Ok(())\n    }}").unwrap();

    if is_top {
        writeln!(
            out,
            "\n    /// Decodes a whole message body at `version`; bytes left over are an error."
        )
        .unwrap();
        writeln!(
            out,
            "    pub fn decode_body(body: &Bytes, version: i16) -> Result<Self, CodecError> {{"
        )
        .unwrap();
        writeln!(out, "        check_version(version)?;").unwrap();
        writeln!(
            out,
            "        w::complete(body, |src, i| Self::decode(src, i, version))"
        )
        .unwrap();
        writeln!(out, "    }}").unwrap();
    }

    // Random values for property tests: every field outside `version` keeps its default, so a
    // random value survives encode -> decode unchanged.
    writeln!(
        out,
        "\n    /// A random value valid at `version` (fields outside it keep their defaults)."
    )
    .unwrap();
    writeln!(out, "    #[cfg(any(test, feature = \"testing\"))]").unwrap();
    writeln!(
        out,
        "    #[allow(unused_variables, clippy::field_reassign_with_default)]"
    )
    .unwrap();
    writeln!(
        out,
        "    pub fn random(g: &mut crate::codec::testing::Gen, version: i16) -> Self {{"
    )
    .unwrap();
    writeln!(out, "        let mut this = Self::default();").unwrap();
    for f in &s.fields {
        let c = cond(f.versions, all);
        let value = rnd_value(&f.ty);
        let value = if f.is_nullable_anywhere() {
            let n = cond(f.nullable.intersect(f.versions), all);
            let n = if n == "true" {
                String::new()
            } else {
                format!("({n}) && ")
            };
            format!("if {n}g.one_in(4) {{ None }} else {{ Some({value}) }}")
        } else {
            value
        };
        let assign = format!("this.{} = {value};", ident(&f.name));
        if c == "true" {
            writeln!(out, "        {assign}").unwrap();
        } else {
            writeln!(out, "        if {c} {{ {assign} }}").unwrap();
        }
    }
    if has_flex {
        writeln!(out, "        if is_flexible(version) {{ this.unknown_tagged_fields = g.unknown_tagged_fields(); }}").unwrap();
    }
    writeln!(out, "        this\n    }}").unwrap();
    writeln!(out, "}}\n").unwrap();
    Ok(())
}

/// The generated module of one API (included by `core/src/api/<name>.rs`).
pub fn emit_api(api: &Api) -> Result<String, String> {
    let mut out = String::new();
    let flex = if api.flexible.is_empty() {
        "let _ = version; false".to_string()
    } else {
        format!("version >= {}", api.flexible.min)
    };
    writeln!(
        out,
        "// Generated by core/build.rs from core/schema/{}: do not edit.",
        api.file
    )
    .unwrap();
    writeln!(out, "#[allow(unused_imports)]\nuse crate::codec::wire::{{self as w, KStr, PResult, RawTaggedField, Src, Uuid}};").unwrap();
    writeln!(
        out,
        "#[allow(unused_imports)]\nuse crate::codec::CodecError;"
    )
    .unwrap();
    writeln!(
        out,
        "#[allow(unused_imports)]\nuse bytes::{{Bytes, BytesMut}};\n"
    )
    .unwrap();
    writeln!(out, "/// The Kafka API key of {}.", api.name).unwrap();
    writeln!(out, "pub const API_KEY: i16 = {};", api.key).unwrap();
    writeln!(out, "/// Versions Kelp decodes and encodes.").unwrap();
    writeln!(out, "pub const VERSIONS: crate::codec::VersionRange = crate::codec::VersionRange {{ min: {}, max: {} }};", api.versions.min, api.versions.max).unwrap();
    writeln!(
        out,
        "/// Whether `version` uses compact types and tagged fields."
    )
    .unwrap();
    writeln!(out, "#[allow(unused_comparisons)]\npub const fn is_flexible(version: i16) -> bool {{ {flex} }}\n").unwrap();
    writeln!(
        out,
        "fn check_version(version: i16) -> Result<(), CodecError> {{"
    )
    .unwrap();
    writeln!(out, "    if VERSIONS.contains(version) {{ Ok(()) }} else {{ Err(CodecError::UnsupportedVersion {{ api_key: API_KEY, version }}) }}\n}}\n").unwrap();
    for (side, structs) in [("request", &api.request), ("response", &api.response)] {
        writeln!(out, "/// Types of the {} {side}.", api.name).unwrap();
        writeln!(
            out,
            "pub mod {side} {{\n#[allow(unused_imports)]\nuse super::*;\n"
        )
        .unwrap();
        for (n, s) in structs.iter().enumerate() {
            emit_struct(&mut out, s, api, n == 0)?;
        }
        writeln!(out, "}}\n").unwrap();
    }
    writeln!(
        out,
        "pub use request::{}Request;\npub use response::{}Response;",
        api.name, api.name
    )
    .unwrap();
    Ok(out)
}

/// The table of every API: `ApiKey`, its properties, and the `RequestBody` / `ResponseBody` enums.
pub fn emit_table(apis: &[Api]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "// Generated by core/build.rs from core/schema/*.msg: do not edit.\n"
    )
    .unwrap();
    writeln!(out, "/// Every Kafka API Kelp speaks.").unwrap();
    writeln!(
        out,
        "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum ApiKey {{"
    )
    .unwrap();
    for a in apis {
        writeln!(out, "    /// Key {}.\n    {} = {},", a.key, a.name, a.key).unwrap();
    }
    writeln!(out, "}}\n\nimpl ApiKey {{").unwrap();
    writeln!(
        out,
        "    /// Every API, in order of key.\n    pub const ALL: [ApiKey; {}] = [{}];",
        apis.len(),
        apis.iter()
            .map(|a| format!("ApiKey::{}", a.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    writeln!(out, "    /// The API with this key, if Kelp speaks it.\n    pub const fn from_code(code: i16) -> Option<ApiKey> {{\n        match code {{").unwrap();
    for a in apis {
        writeln!(out, "            {} => Some(ApiKey::{}),", a.key, a.name).unwrap();
    }
    writeln!(out, "            _ => None,\n        }}\n    }}").unwrap();
    writeln!(
        out,
        "    /// The wire key.\n    pub const fn code(self) -> i16 {{ self as i16 }}"
    )
    .unwrap();
    let per = |out: &mut String, doc: &str, sig: &str, f: &dyn Fn(&Api) -> String| {
        writeln!(
            out,
            "    /// {doc}\n    pub const fn {sig} {{\n        match self {{"
        )
        .unwrap();
        for a in apis {
            writeln!(out, "            ApiKey::{} => {},", a.name, f(a)).unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
    };
    per(
        &mut out,
        "The protocol's name of the API.",
        "name(self) -> &'static str",
        &|a| format!("\"{}\"", a.name),
    );
    per(
        &mut out,
        "Versions Kelp decodes and encodes.",
        "versions(self) -> VersionRange",
        &|a| format!("{}::VERSIONS", snake(&a.name)),
    );
    per(
        &mut out,
        "Versions advertised in ApiVersions (may start lower than `versions`, see KAFKA-18659).",
        "advertised(self) -> VersionRange",
        &|a| {
            format!(
                "VersionRange {{ min: {}, max: {} }}",
                a.advertise_min, a.versions.max
            )
        },
    );
    per(
        &mut out,
        "Whether `version` of this API uses compact types and tagged fields.",
        "is_flexible(self, version: i16) -> bool",
        &|a| format!("{}::is_flexible(version)", snake(&a.name)),
    );
    writeln!(out, "}}\n").unwrap();

    for (side, suffix) in [("RequestBody", "Request"), ("ResponseBody", "Response")] {
        writeln!(
            out,
            "/// The body of any {} Kelp speaks.",
            suffix.to_lowercase()
        )
        .unwrap();
        writeln!(
            out,
            "#[derive(Clone, Debug, PartialEq)]\npub enum {side} {{"
        )
        .unwrap();
        for a in apis {
            writeln!(
                out,
                "    /// {}.\n    {}({}::{}{suffix}),",
                a.name,
                a.name,
                snake(&a.name),
                a.name
            )
            .unwrap();
        }
        writeln!(out, "}}\n\nimpl {side} {{").unwrap();
        writeln!(out, "    /// The API this body belongs to.\n    pub fn api_key(&self) -> ApiKey {{\n        match self {{").unwrap();
        for a in apis {
            writeln!(
                out,
                "            {side}::{}(_) => ApiKey::{},",
                a.name, a.name
            )
            .unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
        writeln!(
            out,
            "    /// Decodes the body of `api` at `version` (checked against the supported range)."
        )
        .unwrap();
        writeln!(out, "    pub fn decode<'a>(api: ApiKey, version: i16, src: &Src<'_>, i: &'a [u8]) -> PResult<'a, Self> {{").unwrap();
        writeln!(out, "        if !api.versions().contains(version) {{\n            return Err(nom::Err::Failure(CodecError::UnsupportedVersion {{ api_key: api.code(), version }}));\n        }}").unwrap();
        writeln!(out, "        match api {{").unwrap();
        for a in apis {
            writeln!(out, "            ApiKey::{n} => {m}::{n}{suffix}::decode(src, i, version).map(|(i, b)| (i, {side}::{n}(b))),", n = a.name, m = snake(&a.name)).unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
        writeln!(out, "    /// Encodes the body at `version`.").unwrap();
        writeln!(out, "    pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), CodecError> {{").unwrap();
        writeln!(out, "        crate::codec::EncodeBuf::copying_into(buf, |b| self.encode_to(b, version))\n    }}").unwrap();
        writeln!(
            out,
            "    /// Encodes the body at `version` into `buf`, which may splice record batches in."
        )
        .unwrap();
        writeln!(out, "    pub fn encode_to(&self, buf: &mut crate::codec::EncodeBuf, version: i16) -> Result<(), CodecError> {{").unwrap();
        writeln!(out, "        if !self.api_key().versions().contains(version) {{\n            return Err(CodecError::UnsupportedVersion {{ api_key: self.api_key().code(), version }});\n        }}").unwrap();
        writeln!(out, "        match self {{").unwrap();
        for a in apis {
            writeln!(
                out,
                "            {side}::{}(b) => b.encode_to(buf, version),",
                a.name
            )
            .unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
        writeln!(
            out,
            "    /// A random body of `api` valid at `version`, for property tests."
        )
        .unwrap();
        writeln!(out, "    #[cfg(any(test, feature = \"testing\"))]").unwrap();
        writeln!(out, "    pub fn random(api: ApiKey, g: &mut crate::codec::testing::Gen, version: i16) -> Self {{\n        match api {{").unwrap();
        for a in apis {
            writeln!(
                out,
                "            ApiKey::{n} => {side}::{n}({m}::{n}{suffix}::random(g, version)),",
                n = a.name,
                m = snake(&a.name)
            )
            .unwrap();
        }
        writeln!(out, "        }}\n    }}").unwrap();
        writeln!(out, "}}\n").unwrap();
    }
    out
}
