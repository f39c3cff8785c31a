//! `Value`: the dynamic values that method arguments and results travel as.
//!
//! It mirrors MessagePack's data model (the client protocol's encoding), so a
//! Python client, a Rust client and a Rust object all agree on what a call means.
//! It is not a general serialization framework: typed code converts with
//! `IntoValue` / `FromValue`.

use crate::error::ObjectError;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// A dynamically typed value. Maps keep their entries in order (a `Vec` of pairs),
/// so encoding is deterministic and any key type works.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The Python-ish name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "dict",
        }
    }
}

impl fmt::Display for Value {
    /// Python's `repr` of the value, which is what users of the original saw.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "None"),
            Value::Bool(true) => write!(f, "True"),
            Value::Bool(false) => write!(f, "False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => {
                write!(f, "'")?;
                for c in s.chars() {
                    match c {
                        '\'' => write!(f, "\\'")?,
                        '\\' => write!(f, "\\\\")?,
                        '\n' => write!(f, "\\n")?,
                        c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                write!(f, "'")
            }
            Value::Bytes(b) => {
                write!(f, "b'")?;
                for &byte in b {
                    match byte {
                        b'\'' => write!(f, "\\'")?,
                        b'\\' => write!(f, "\\\\")?,
                        0x20..=0x7e => write!(f, "{}", byte as char)?,
                        _ => write!(f, "\\x{byte:02x}")?,
                    }
                }
                write!(f, "'")
            }
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(entries) => {
                write!(f, "{{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// Conversion of a Rust value into a `Value` (method results, client arguments).
pub trait IntoValue {
    fn into_value(self) -> Value;
}

/// Conversion of a `Value` into a Rust value (method arguments, client results).
/// A mismatch is a `TypeError`, as Python would raise.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, ObjectError>;
}

fn mismatch(want: &str, got: &Value) -> ObjectError {
    ObjectError::type_error(format!("expected {want}, got {}", got.type_name()))
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        Ok(value.clone())
    }
}

impl IntoValue for () {
    fn into_value(self) -> Value {
        Value::Nil
    }
}

impl FromValue for () {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Nil => Ok(()),
            other => Err(mismatch("None", other)),
        }
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Bool(b) => Ok(*b),
            other => Err(mismatch("bool", other)),
        }
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::Int(i64::try_from(self).unwrap_or(i64::MAX))
            }
        }

        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, ObjectError> {
                match value {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| {
                        ObjectError::value_error(format!("{i} is out of range for {}", stringify!($t)))
                    }),
                    Value::Bool(b) => Ok(<$t>::from(*b)),
                    other => Err(mismatch("int", other)),
                }
            }
        }
    )*};
}

int_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Float(x) => Ok(*x),
            // Python accepts an int where a float is expected.
            Value::Int(i) => Ok(*i as f64),
            other => Err(mismatch("float", other)),
        }
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Str(self)
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Str(self.to_string())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Str(s) => Ok(s.clone()),
            other => Err(mismatch("str", other)),
        }
    }
}

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::Nil, IntoValue::into_value)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: IntoValue> IntoValue for Vec<T> {
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(IntoValue::into_value).collect())
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::List(items) => items.iter().map(T::from_value).collect(),
            other => Err(mismatch("list", other)),
        }
    }
}

impl<T: IntoValue> IntoValue for VecDeque<T> {
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(IntoValue::into_value).collect())
    }
}

impl<T: IntoValue> IntoValue for BTreeSet<T> {
    fn into_value(self) -> Value {
        Value::List(self.into_iter().map(IntoValue::into_value).collect())
    }
}

impl<K: IntoValue, V: IntoValue> IntoValue for BTreeMap<K, V> {
    fn into_value(self) -> Value {
        Value::Map(self.into_iter().map(|(k, v)| (k.into_value(), v.into_value())).collect())
    }
}

impl<K: FromValue + Ord, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Map(entries) => {
                entries.iter().map(|(k, v)| Ok((K::from_value(k)?, V::from_value(v)?))).collect()
            }
            other => Err(mismatch("dict", other)),
        }
    }
}

macro_rules! tuple_value {
    ($len:expr; $($name:ident $idx:tt),*) => {
        impl<$($name: IntoValue),*> IntoValue for ($($name,)*) {
            fn into_value(self) -> Value {
                Value::List(vec![$(self.$idx.into_value()),*])
            }
        }

        impl<$($name: FromValue),*> FromValue for ($($name,)*) {
            fn from_value(value: &Value) -> Result<Self, ObjectError> {
                match value {
                    Value::List(items) if items.len() == $len => {
                        Ok(($($name::from_value(&items[$idx])?,)*))
                    }
                    other => Err(mismatch(concat!("a list of ", stringify!($len)), other)),
                }
            }
        }
    };
}

tuple_value!(2; A 0, B 1);
tuple_value!(3; A 0, B 1, C 2);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a MessagePack value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u).map(Value::Int).map_err(|_| E::custom(format!("integer {u} exceeds i64")))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(b.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(b))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_messagepack_and_typed_conversions() {
        let v = Value::Map(vec![
            (Value::Str("a".into()), Value::List(vec![Value::Int(-3), Value::Float(1.5)])),
            (Value::Int(7), Value::Bytes(vec![0, 255])),
            (Value::Nil, Value::Bool(true)),
        ]);
        let bytes = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(rmp_serde::from_slice::<Value>(&bytes).unwrap(), v);
        let typed: Vec<(String, i64)> = vec![("x".into(), 1), ("y".into(), 2)];
        let back = Vec::<(String, i64)>::from_value(&typed.clone().into_value()).unwrap();
        assert_eq!(back, typed);
        assert_eq!(u8::from_value(&Value::Int(300)).unwrap_err().kind, "ValueError");
        assert_eq!(String::from_value(&Value::Int(1)).unwrap_err().kind, "TypeError");
        assert_eq!(f64::from_value(&Value::Int(2)).unwrap(), 2.0);
        assert_eq!(v.to_string(), r"{'a': [-3, 1.5], 7: b'\x00\xff', None: True}");
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        for bytes in [&[0xc1u8][..], &[0x92, 0x01][..], &[0xdd, 0xff, 0xff, 0xff, 0xff][..]] {
            assert!(rmp_serde::from_slice::<Value>(bytes).is_err());
        }
    }
}
