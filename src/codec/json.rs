//! Reading typed values out of a parsed `serde_json::Value`, and writing
//! JSON objects whose key order matters. A decoder implements [`FromJson`]
//! and reads each field through [`Fields`], so it reads like a table of its
//! fields: a field that is missing or `null` takes its type's empty value
//! (unless it is required), unknown fields are ignored, and a field of the
//! wrong type is an error naming the field. [`OrderedObject`] writes keys in the order they are
//! added, byte for byte as serde_json writes a struct, where a file format
//! or a peer's encoder fixes the order (`serde_json::Map` sorts its keys).
//! Errors are `serde_json::Error`s, as those of the parse before them are,
//! and never quote the input.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::de::Error as _;
use serde_json::{Map, Value};

/// A type read from a parsed JSON value.
pub trait FromJson: Sized {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error>;
}

/// Parses `bytes` as one JSON document and reads a `T` from it.
pub fn decode<T: FromJson>(bytes: impl AsRef<[u8]>) -> Result<T, serde_json::Error> {
    T::from_json(&serde_json::from_slice(bytes.as_ref())?)
}

/// An error that says `message`.
pub fn error(message: impl fmt::Display) -> serde_json::Error {
    serde_json::Error::custom(message)
}

/// The error for `value` where `expected` was wanted, without the value.
#[cold]
fn invalid_type(value: &Value, expected: &str) -> serde_json::Error {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    error(format!("invalid type: {found}, expected {expected}"))
}

/// The fields of a JSON object, read one by one into a struct literal.
/// A field that cannot be read takes its empty value and its error is
/// kept; [`Fields::finish`] returns the first one. Reading on past an
/// error keeps a decoder free of an early return per field.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    error: Cell<Option<serde_json::Error>>,
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fields")
            .field("keys", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Fields<'a> {
    /// The fields of `value`, which must be an object.
    pub fn of(value: &'a Value) -> Result<Fields<'a>, serde_json::Error> {
        let map = value
            .as_object()
            .ok_or_else(|| invalid_type(value, "an object"))?;
        Ok(Fields {
            map,
            error: Cell::new(None),
        })
    }

    /// `key` read as a `T`; missing or `null` is `T`'s empty value, as
    /// dockerd and Go encoders write `null` for empty lists and maps.
    pub fn field<T: FromJson + Default>(&self, key: &str) -> T {
        self.opt(key).unwrap_or_default()
    }

    /// `key` read as a `T`; `None` when it is missing or `null`.
    pub fn opt<T: FromJson>(&self, key: &str) -> Option<T> {
        self.read(key, self.present(key)?)
    }

    /// `key` read as a `T`, which must be present.
    pub fn required<T: FromJson + Default>(&self, key: &str) -> T {
        match self.map.get(key) {
            Some(value) => self.read(key, value).unwrap_or_default(),
            None => {
                self.keep(error(format!("missing field `{key}`")));
                T::default()
            }
        }
    }

    /// `value`, the struct the fields were read into, unless a field
    /// could not be read.
    pub fn finish<T>(&self, value: T) -> Result<T, serde_json::Error> {
        match self.error.take() {
            Some(err) => Err(err),
            None => Ok(value),
        }
    }

    // The lookup and the error paths are not generic, so each field type
    // compiles only its own decoder call.

    #[inline(never)]
    fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn read<T: FromJson>(&self, key: &str, value: &Value) -> Option<T> {
        match T::from_json(value) {
            Ok(value) => Some(value),
            Err(err) => {
                self.keep(in_field(key, err));
                None
            }
        }
    }

    #[cold]
    fn keep(&self, err: serde_json::Error) {
        let first = self.error.take().unwrap_or(err);
        self.error.set(Some(first));
    }
}

/// Names the field in an error from inside it, so a nested error reads as
/// a path: `State: Pid: invalid type: ...`.
fn read<T: FromJson>(key: &str, value: &Value) -> Result<T, serde_json::Error> {
    T::from_json(value).map_err(|err| in_field(key, err))
}

#[cold]
fn in_field(key: &str, err: serde_json::Error) -> serde_json::Error {
    error(format!("{key}: {err}"))
}

impl FromJson for Value {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        Ok(value.clone())
    }
}

impl FromJson for String {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid_type(value, "a string"))
    }
}

impl FromJson for bool {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        value
            .as_bool()
            .ok_or_else(|| invalid_type(value, "a boolean"))
    }
}

impl FromJson for i64 {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        value
            .as_i64()
            .ok_or_else(|| invalid_type(value, "a 64-bit integer"))
    }
}

impl FromJson for u64 {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        value
            .as_u64()
            .ok_or_else(|| invalid_type(value, "an unsigned 64-bit integer"))
    }
}

/// The narrower integers, read as `i64` and checked against their range.
macro_rules! narrow_integer {
    ($($int:ty),*) => {$(
        impl FromJson for $int {
            fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
                value
                    .as_i64()
                    .and_then(|wide| <$int>::try_from(wide).ok())
                    .ok_or_else(|| invalid_type(value, concat!("an integer that fits ", stringify!($int))))
            }
        }
    )*};
}

narrow_integer!(i32, u32, usize);

impl FromJson for IpAddr {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let text = value
            .as_str()
            .ok_or_else(|| invalid_type(value, "an IP address"))?;
        text.parse().map_err(|_| error("invalid IP address syntax"))
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        // A loop rather than collecting into a Result, whose adapter
        // compiles larger for each item type.
        let items = value
            .as_array()
            .ok_or_else(|| invalid_type(value, "an array"))?;
        let mut read = Vec::with_capacity(items.len());
        for item in items {
            read.push(T::from_json(item)?);
        }
        Ok(read)
    }
}

// Maps are built by insert: collecting into a `BTreeMap` compiles a sort
// for each value type, and the entries come in key order anyway.

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let mut map = BTreeMap::new();
        for (key, value) in Fields::of(value)?.map {
            map.insert(key.clone(), read(key, value)?);
        }
        Ok(map)
    }
}

impl<T: FromJson> FromJson for HashMap<String, T> {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let mut map = HashMap::new();
        for (key, value) in Fields::of(value)?.map {
            map.insert(key.clone(), read(key, value)?);
        }
        Ok(map)
    }
}

/// An object of the entries that have a value; request bodies leave out
/// what dockshim does not set, so the engine's defaults apply.
pub fn object_of<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<Value>)>,
) -> Map<String, Value> {
    let mut object = Map::new();
    for (key, value) in entries {
        if let Some(value) = value {
            object.insert(key.to_owned(), value);
        }
    }
    object
}

/// The object of `fields`, every one of them set: the documents of the
/// verbose status calls. Built by insert, as `json!` would serialize every
/// field through serde with an error path of its own; the keys come out
/// sorted, so the text does not depend on the order the fields are given in.
pub fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut object = Map::new();
    for (key, value) in fields {
        object.insert(key.to_owned(), value);
    }
    Value::Object(object)
}

/// `value`, unless it is `""`, `[]`, `{}`, `false` or `null`.
pub fn unless_empty(value: impl Into<Value>) -> Option<Value> {
    let value = value.into();
    let empty = match &value {
        Value::Null => true,
        Value::Bool(set) => !set,
        Value::Number(_) => false,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(entries) => entries.is_empty(),
    };
    (!empty).then_some(value)
}

/// A JSON object that keeps its keys in the order they are added: its
/// text is compact, byte for byte as serde_json writes a struct, and it
/// converts into a `Value` (whose keys are sorted) for embedding.
#[derive(Debug, Default)]
pub struct OrderedObject {
    text: String,
    value: Map<String, Value>,
}

impl OrderedObject {
    pub fn new() -> OrderedObject {
        OrderedObject::default()
    }

    /// Adds `key` with `value`.
    pub fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut OrderedObject {
        let value = value.into();
        self.push_key(key);
        self.text.push_str(&value.to_string());
        self.value.insert(key.to_owned(), value);
        self
    }

    /// Adds `key` with `value` if there is one.
    pub fn add_some(&mut self, key: &str, value: Option<impl Into<Value>>) -> &mut OrderedObject {
        match value {
            Some(value) => self.add(key, value),
            None => self,
        }
    }

    /// Adds `key` with an object that keeps its own order.
    pub fn add_object(&mut self, key: &str, object: OrderedObject) -> &mut OrderedObject {
        self.push_key(key);
        self.text.push_str(&object.text_so_far());
        self.value
            .insert(key.to_owned(), Value::Object(object.value));
        self
    }

    /// Adds `key` with a list of objects that keep their own order.
    pub fn add_objects(
        &mut self,
        key: &str,
        objects: impl IntoIterator<Item = OrderedObject>,
    ) -> &mut OrderedObject {
        self.push_key(key);
        self.text.push('[');
        let mut values = Vec::new();
        for object in objects {
            if !values.is_empty() {
                self.text.push(',');
            }
            self.text.push_str(&object.text_so_far());
            values.push(Value::Object(object.value));
        }
        self.text.push(']');
        self.value.insert(key.to_owned(), Value::Array(values));
        self
    }

    /// The object's text.
    pub fn into_text(self) -> String {
        self.text_so_far()
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.value)
    }

    fn text_so_far(&self) -> String {
        format!("{{{}}}", self.text)
    }

    fn push_key(&mut self, key: &str) {
        if !self.text.is_empty() {
            self.text.push(',');
        }
        self.text.push_str(&Value::from(key).to_string());
        self.text.push(':');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_reads_as_the_json_literal_of_its_fields() {
        let built = object(vec![
            ("ready", Value::from(true)),
            ("endpoint", Value::from("unix:///run/docker.sock")),
            ("apiVersion", Value::from(None::<String>)),
            ("plugins", Value::from(vec!["bridge", "portmap"])),
        ]);
        let literal = json!({
            "ready": true,
            "endpoint": "unix:///run/docker.sock",
            "apiVersion": null,
            "plugins": ["bridge", "portmap"],
        });
        assert_eq!(built.to_string(), literal.to_string());
    }

    #[derive(Debug, Default, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        count: Option<i32>,
        tags: Vec<String>,
    }

    impl FromJson for Sample {
        fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
            let fields = Fields::of(value)?;
            fields.finish(Sample {
                name: fields.required("Name"),
                labels: fields.field("Labels"),
                count: fields.opt("Count"),
                tags: fields.field("Tags"),
            })
        }
    }

    #[test]
    fn missing_and_null_fields_read_as_empty_and_unknown_ones_are_ignored() {
        let sample: Sample =
            decode(br#"{"Name":"a","Labels":null,"Count":null,"Other":{"x":1}}"#).unwrap();
        assert_eq!(
            sample,
            Sample {
                name: "a".to_owned(),
                ..Sample::default()
            }
        );
    }

    #[test]
    fn a_required_field_must_be_present() {
        let err = decode::<Sample>(br#"{"Labels":{}}"#).unwrap_err();
        assert_eq!(err.to_string(), "missing field `Name`");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_without_its_value() {
        let err = decode::<Sample>(br#"{"Name":"a","Labels":{"k":"secret","n":5}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Labels: n: invalid type: a number, expected a string"
        );
        let err = decode::<Sample>(br#"{"Name":"a","Count":4294967296}"#).unwrap_err();
        assert!(err.to_string().starts_with("Count: invalid type"), "{err}");
    }

    #[test]
    fn the_first_field_that_cannot_be_read_is_the_error() {
        let err = decode::<Sample>(br#"{"Labels":[],"Count":"x"}"#).unwrap_err();
        assert_eq!(err.to_string(), "missing field `Name`");
        let err = decode::<Sample>(br#"{"Name":"a","Labels":[],"Count":"x"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Labels: invalid type: an array, expected an object"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        let err = decode::<Sample>(b"[]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: an array, expected an object"
        );
        assert!(decode::<Sample>(b"{").unwrap_err().is_eof());
    }

    #[test]
    fn empty_values_are_left_out_of_an_object_and_zero_is_not_empty() {
        let body = object_of([
            ("Text", unless_empty("")),
            ("List", unless_empty(Vec::<String>::new())),
            ("Flag", unless_empty(false)),
            ("Zero", unless_empty(0)),
            ("Set", unless_empty(true)),
            ("Kept", Some(json!([]))),
        ]);
        assert_eq!(
            Value::Object(body),
            json!({"Zero": 0, "Set": true, "Kept": []})
        );
    }

    fn ordered(z: i32) -> OrderedObject {
        let mut object = OrderedObject::new();
        object.add("z", z).add("a", "q\"\n");
        object
    }

    #[test]
    fn ordered_objects_keep_their_key_order_and_escape_as_serde_json_does() {
        let mut outer = OrderedObject::new();
        outer
            .add("b", true)
            .add_objects("list", [ordered(1), OrderedObject::new()])
            .add_object("one", ordered(2))
            .add_some("none", None::<i32>)
            .add("a", json!(null));
        assert_eq!(
            outer.into_text(),
            r#"{"b":true,"list":[{"z":1,"a":"q\"\n"},{}],"one":{"z":2,"a":"q\"\n"},"a":null}"#
        );
    }

    #[test]
    fn an_ordered_object_converts_into_the_same_value() {
        let mut outer = OrderedObject::new();
        outer
            .add_objects("list", [ordered(1)])
            .add_object("one", ordered(2));
        assert_eq!(
            outer.into_value(),
            json!({"list": [{"z": 1, "a": "q\"\n"}], "one": {"z": 2, "a": "q\"\n"}})
        );
    }
}
