//! The serde plumbing under [`Config::from_json_str`](super::Config::from_json_str): a
//! deserializer over a parsed `serde_json::Value` whose error type words every problem for
//! people, the field path of an error, and the unknown-key suggestion.
//!
//! Why not `serde_json::from_str` straight into the structs: serde_json words its own errors
//! (`invalid type: string "8080", expected u16 at line 1 column 14`, ``unknown field `prot`,
//! expected one of `port`, ...``), and they are not ours (`port: expected an integer, found the
//! string "8080"`, `prot: unknown key (did you mean "port"?)`). So the text is parsed once into a
//! `Value` (malformed JSON keeps serde_json's line and column), then handed to the derived
//! structs through [`ValueDeserializer`], whose error type is [`Problem`]: it sees the value when
//! a type is wrong, and serde hands it each struct's key list when a key is unknown.
//! `serde_path_to_error` adds the path. The text itself is parsed by [`parse_json`], which
//! refuses an object with a key given twice (config.json and the admin API's bodies alike).

use std::fmt::{self, Write as _};

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;
use serde_path_to_error::Segment;

/// Deserializes `value` into `T`; an error comes back as (field path, problem).
pub(super) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(ValueDeserializer(value)).map_err(|error| {
        let path = field_path(error.path());
        (path, error.into_inner().0)
    })
}

/// One problem with one value, worded for people; the path is added around it.
#[derive(Debug)]
pub(super) struct Problem(String);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Problem(message.to_string())
    }

    /// Raised by `#[serde(deny_unknown_fields)]`; `expected` is the struct's keys in field order.
    fn unknown_field(key: &str, expected: &'static [&'static str]) -> Self {
        Problem(unknown_key(key, expected))
    }

    // The two below are fallbacks: [`ValueDeserializer`] checks the JSON type itself (with the
    // value in hand), and every struct is `#[serde(default)]`, so no field is ever missing.
    fn invalid_type(found: de::Unexpected, expected: &dyn de::Expected) -> Self {
        Problem(format!("expected {expected}, found {found}"))
    }

    fn missing_field(key: &'static str) -> Self {
        Problem(format!("{key:?} is required"))
    }
}

/// A `Value` as a serde `Deserializer` with [`Problem`] errors. Asked for a bool, a string, an
/// array or an object, it checks the JSON type first and names what it found; everything else
/// (numbers, and `Value` itself, which the validated newtypes take) goes through
/// `deserialize_any`.
pub(super) struct ValueDeserializer(Value);

impl ValueDeserializer {
    fn require(self, what: &str, is: fn(&Value) -> bool) -> Result<Self, Problem> {
        if is(&self.0) {
            Ok(self)
        } else {
            Err(Problem(expected(what, &self.0)))
        }
    }
}

impl<'de> IntoDeserializer<'de, Problem> for ValueDeserializer {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    // Without serde_json's arbitrary_precision (not enabled here) every other
                    // number is an f64.
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(ValueDeserializer));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let entries = map.into_iter().map(|(k, v)| (k, ValueDeserializer(v)));
                let mut map = MapDeserializer::new(entries);
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        // `null` is "not given": with `#[serde(default)]` structs of `Option`s, null means the
        // default for every key.
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.require("true or false", Value::is_boolean)?
            .deserialize_any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.require("a string", Value::is_string)?
            .deserialize_any(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.require("an array", Value::is_array)?
            .deserialize_any(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.require("an object", Value::is_object)?
            .deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct enum identifier ignored_any
    }
}

/// `backends[2].weight`, `ssl.cert_file`; a key that is not a plain word is quoted
/// (`"a key\n"`). Empty for the document itself.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        let key = match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } => key_text(key),
            Segment::Unknown => "?".to_owned(),
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&key);
    }
    out
}

/// A key as it appears in a path: as is when it is a plain word, else quoted.
pub(super) fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// The problem text for an unknown key: the nearest known key within two edits if there is one
/// (the first in `known`'s order on a tie), else all of them in `known`'s order.
pub(super) fn unknown_key(key: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((_, candidate)) => format!("unknown key (did you mean {candidate:?}?)"),
        None => format!("unknown key (expected one of: {})", known.join(", ")),
    }
}

/// Levenshtein distance, counted in chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]` is the distance between the part of `a` seen so far and `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `expected <what>, found <the value>`.
pub(super) fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", describe(found))
}

/// A JSON value as messages name it: `the string "8080"`, `the number 1.5`, `an array`, `true`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `a`, `a or b`, `a, b or c`.
pub(super) fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Why [`parse_json`] refused a text.
#[derive(Debug)]
pub enum JsonError {
    /// Not well-formed JSON (serde_json's message, with the line and column).
    Syntax(serde_json::Error),
    /// An object gives the same key twice; the path of the second one (`ssl.enabled`,
    /// `backends[1].url`).
    Duplicate(String),
}

impl JsonError {
    /// The problem of a [`JsonError::Duplicate`], worded once for config.json and the admin API.
    pub const DUPLICATE: &'static str = "given more than once (each key may appear once)";
}

/// Parses JSON text into a `Value`, refusing an object with a duplicate key at any depth.
/// (`serde_json::from_str::<Value>` keeps the last of them: `{"url": "a", "url": "b"}` would
/// silently be `b`.) The path of a duplicate is built only when one is found: each level keeps a
/// reference to its parent's key or index.
pub fn parse_json(text: &[u8]) -> Result<Value, JsonError> {
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = de::DeserializeSeed::deserialize(
        Strict {
            at: None,
            found: &found,
        },
        &mut de,
    )
    .and_then(|value| de.end().map(|()| value));
    match (parsed, found.into_inner()) {
        (_, Some(path)) => Err(JsonError::Duplicate(path)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// Where a value sits: its key or index, and its parent's place.
struct Place<'a> {
    parent: Option<&'a Place<'a>>,
    key: Step<'a>,
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl Place<'_> {
    /// `backends[1].url`: the root's first key, then `.key` or `[index]` down to this place.
    fn path(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        // bounded: serde_json refuses nesting deeper than 128
        while let Some(place) = at {
            steps.push(&place.key);
            at = place.parent;
        }
        let mut out = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&key_text(key));
                }
            }
        }
        out
    }
}

/// The seed and visitor of [`parse_json`]: a `Value`, refusing duplicate keys.
#[derive(Clone, Copy)]
struct Strict<'a> {
    at: Option<&'a Place<'a>>,
    found: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> de::DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        // bounded: by the input's length
        loop {
            let place = Place {
                parent: self.at,
                key: Step::Index(items.len()),
            };
            let seed = Strict {
                at: Some(&place),
                found: self.found,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        // bounded: by the input's length
        while let Some(key) = map.next_key::<String>()? {
            let place = Place {
                parent: self.at,
                key: Step::Key(&key),
            };
            if object.contains_key(&key) {
                *self.found.borrow_mut() = Some(place.path());
                return Err(de::Error::custom(JsonError::DUPLICATE));
            }
            let seed = Strict {
                at: Some(&place),
                found: self.found,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
