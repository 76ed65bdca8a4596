//! serde over the node tree: every error carries where its node was
//! written, the innermost node that failed.
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::YamlError;
use super::tree::{Kind, Mark, Node};

impl de::Error for YamlError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        YamlError { at: None, message: msg.to_string() }
    }
}

/// Locate an error at `at` unless a deeper node already did.
fn at(at: Mark) -> impl FnOnce(YamlError) -> YamlError {
    move |mut e| {
        e.at.get_or_insert(at);
        e
    }
}

#[derive(Clone, Copy)]
pub struct De<'a>(pub &'a Node);

/// What a plain scalar means in YAML's core schema.
enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a str),
}

fn resolve(text: &str, plain: bool) -> Resolved<'_> {
    if !plain {
        return Resolved::Str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(v) = u64::from_str_radix(hex, 16) {
            return Resolved::Uint(v);
        }
    } else if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(v) = u64::from_str_radix(oct, 8) {
            return Resolved::Uint(v);
        }
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse::<u64>() {
            return Resolved::Uint(v);
        }
    } else if let Some(rest) = text.strip_prefix(['-', '+'])
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = text.parse::<i64>()
    {
        return Resolved::Int(v);
    }
    let looks_numeric = text.bytes().next().is_some_and(|b| b.is_ascii_digit() || b"+-.".contains(&b))
        && text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(v) = text.parse::<f64>() {
        return Resolved::Float(v);
    }
    Resolved::Str(text)
}

impl<'a> De<'a> {
    fn float(&self) -> Result<f64, YamlError> {
        let (text, plain) = self.scalar()?;
        match resolve(text, plain) {
            Resolved::Float(f) => Ok(f),
            Resolved::Int(i) => Ok(i as f64),
            Resolved::Uint(u) => Ok(u as f64),
            _ => text.trim().parse().map_err(|_| YamlError::at(self.0.at, format!("expected a number, got {text:?}"))),
        }
    }

    fn scalar(&self) -> Result<(&'a str, bool), YamlError> {
        match &self.0.kind {
            Kind::Scalar { text, plain } => Ok((text.as_str(), *plain)),
            Kind::Seq(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &"a single value")),
            Kind::Map(_) => Err(de::Error::invalid_type(de::Unexpected::Map, &"a single value")),
        }
        .map_err(at(self.0.at))
    }

    fn number<T: std::str::FromStr + TryFrom<u64>>(&self, what: &'static str) -> Result<T, YamlError> {
        let (text, plain) = self.scalar()?;
        let bad = || YamlError::at(self.0.at, format!("expected {what}, got {text:?}"));
        if let Ok(v) = text.trim().parse() {
            return Ok(v);
        }
        // Hexadecimal and octal integers, as the core schema writes them.
        match resolve(text, plain) {
            Resolved::Uint(u) => T::try_from(u).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

macro_rules! number {
    ($($method:ident $visit:ident $t:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
            let v: $t = self.number($what)?;
            visitor.$visit(v).map_err(at(self.0.at))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = YamlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let node = self.0;
        match &node.kind {
            Kind::Scalar { text, plain } => match resolve(text, *plain) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::Uint(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(s) => visitor.visit_str(s),
            },
            Kind::Seq(items) => visitor.visit_seq(Seq { items: items.iter(), at: node.at }),
            Kind::Map(entries) => visitor.visit_map(Map { entries: entries.iter(), value: None }),
        }
        .map_err(at(node.at))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let (text, _) = self.scalar()?;
        let b = match text {
            "true" | "True" | "TRUE" => true,
            "false" | "False" | "FALSE" => false,
            _ => return Err(YamlError::at(self.0.at, format!("expected true or false, got {text:?}"))),
        };
        visitor.visit_bool(b).map_err(at(self.0.at))
    }

    number! {
        deserialize_i8 visit_i8 i8, "a number";
        deserialize_i16 visit_i16 i16, "a number";
        deserialize_i32 visit_i32 i32, "a number";
        deserialize_i64 visit_i64 i64, "a number";
        deserialize_u8 visit_u8 u8, "a non-negative number";
        deserialize_u16 visit_u16 u16, "a non-negative number";
        deserialize_u32 visit_u32 u32, "a non-negative number";
        deserialize_u64 visit_u64 u64, "a non-negative number";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let v = self.float()?;
        visitor.visit_f32(v as f32).map_err(at(self.0.at))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let v = self.float()?;
        visitor.visit_f64(v).map_err(at(self.0.at))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        let (text, plain) = self.scalar()?;
        if plain && matches!(resolve(text, true), Resolved::Null) {
            return Err(de::Error::invalid_type(de::Unexpected::Unit, &visitor)).map_err(at(self.0.at));
        }
        visitor.visit_str(text).map_err(at(self.0.at))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        if self.0.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }.map_err(at(self.0.at))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        if self.0.is_null() {
            return visitor.visit_unit().map_err(at(self.0.at));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, YamlError> {
        let at_node = self.0.at;
        visitor.visit_newtype_struct(self).map_err(at(at_node))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match &self.0.kind {
            Kind::Seq(items) => visitor.visit_seq(Seq { items: items.iter(), at: self.0.at }).map_err(at(self.0.at)),
            _ if self.0.is_null() => visitor.visit_seq(Seq { items: [].iter(), at: self.0.at }).map_err(at(self.0.at)),
            _ => Err(YamlError::at(self.0.at, "expected a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        match &self.0.kind {
            Kind::Map(entries) => {
                visitor.visit_map(Map { entries: entries.iter(), value: None }).map_err(at(self.0.at))
            }
            _ if self.0.is_null() => visitor.visit_map(Map { entries: [].iter(), value: None }).map_err(at(self.0.at)),
            _ => Err(YamlError::at(self.0.at, "expected a mapping (key: value)")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, YamlError> {
        match &self.0.kind {
            Kind::Scalar { text, .. } => {
                visitor.visit_enum(text.as_str().into_deserializer()).map_err(|e: YamlError| e).map_err(at(self.0.at))
            }
            Kind::Map(entries) if entries.len() == 1 => {
                visitor.visit_enum(Variant { key: &entries[0].0, value: &entries[0].1 }).map_err(at(self.0.at))
            }
            _ => Err(YamlError::at(self.0.at, "expected a name, or a mapping of one name to its settings")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, YamlError> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    at: Mark,
}

impl<'de> de::SeqAccess<'de> for Seq<'_> {
    type Error = YamlError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, YamlError> {
        let _ = self.at;
        match self.items.next() {
            None => Ok(None),
            Some(node) => seed.deserialize(De(node)).map(Some).map_err(at(node.at)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> de::MapAccess<'de> for Map<'_> {
    type Error = YamlError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, YamlError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(De(key)).map(Some).map_err(at(key.at))
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, YamlError> {
        let node = self.value.take().expect("a key came first");
        seed.deserialize(De(node)).map_err(at(node.at))
    }
}

struct Variant<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = YamlError;
    type Variant = De<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, De<'a>), YamlError> {
        let v = seed.deserialize(De(self.key)).map_err(at(self.key.at))?;
        Ok((v, De(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for De<'_> {
    type Error = YamlError;

    fn unit_variant(self) -> Result<(), YamlError> {
        if self.0.is_null() { Ok(()) } else { Err(YamlError::at(self.0.at, "this variant takes no settings")) }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, YamlError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, YamlError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], visitor: V) -> Result<V::Value, YamlError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}
