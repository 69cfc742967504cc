//! Borrowed, one-level views of JSON text, for editing a few values deep inside a large
//! message without building a tree of it: an object is its entries' keys and raw value
//! texts, an array its items' raw texts. Only what is descended into gets parsed, and
//! everything not edited is copied as the exact bytes that arrived.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's entries, in order, with their values as raw text.
pub struct RawObject<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

/// A JSON array's items as raw text.
pub type RawArray<'a> = Vec<&'a RawValue>;

/// An object key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Rebuilds an object with some values replaced: `edit` returns a value's new text or
/// `None` to keep it. `None` overall if nothing was replaced.
pub fn edit_object<'a>(
    object: &RawObject<'a>,
    mut edit: impl FnMut(&str, &'a RawValue) -> Option<String>,
) -> Option<String> {
    let edits: Vec<Option<String>> = object.0.iter().map(|(k, v)| edit(k, v)).collect();
    if edits.iter().all(Option::is_none) {
        return None;
    }
    let mut out = String::with_capacity(
        object
            .0
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum(),
    );
    out.push('{');
    for (i, ((key, value), new)) in object.0.iter().zip(edits).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match key {
            // A borrowed key had no escapes, so its text is its JSON form.
            Cow::Borrowed(key) => {
                out.push('"');
                out.push_str(key);
                out.push('"');
            }
            Cow::Owned(key) => out.push_str(&serde_json::to_string(key).ok()?),
        }
        out.push(':');
        out.push_str(new.as_deref().unwrap_or(value.get()));
    }
    out.push('}');
    Some(out)
}

/// Like [`edit_object`], for an array's items.
pub fn edit_array<'a>(
    items: &RawArray<'a>,
    mut edit: impl FnMut(&'a RawValue) -> Option<String>,
) -> Option<String> {
    let edits: Vec<Option<String>> = items.iter().map(|v| edit(v)).collect();
    if edits.iter().all(Option::is_none) {
        return None;
    }
    let mut out = String::with_capacity(items.iter().map(|v| v.get().len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, (value, new)) in items.iter().zip(edits).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(new.as_deref().unwrap_or(value.get()));
    }
    out.push(']');
    Some(out)
}

/// Replaces a JSON string value through `map` (which returns `None` for no change).
pub fn edit_string(value: &RawValue, map: impl FnOnce(&str) -> Option<String>) -> Option<String> {
    let text: Cow<'_, str> = serde_json::from_str::<Key<'_>>(value.get()).ok()?.0;
    match map(&text) {
        Some(mapped) if mapped != text => serde_json::to_string(&mapped).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_values_keep_their_bytes_and_edited_ones_are_valid_json() {
        let text = r#"{"a" : 1.50, "b\n": {"x": "y"}, "c": [1, "two", {"z": null}]}"#;
        let object: RawObject<'_> = serde_json::from_str(text).unwrap();
        assert!(edit_object(&object, |_, _| None).is_none());
        let edited = edit_object(&object, |key, value| match key {
            "c" => {
                let items: RawArray<'_> = serde_json::from_str(value.get()).ok()?;
                edit_array(&items, |item| edit_string(item, |s| Some(s.to_uppercase())))
            }
            _ => None,
        })
        .unwrap();
        assert_eq!(
            edited,
            r#"{"a":1.50,"b\n":{"x": "y"},"c":[1,"TWO",{"z": null}]}"#
        );
        let _: serde_json::Value = serde_json::from_str(&edited).unwrap();
    }

    #[test]
    fn strings_with_escapes_are_decoded_and_re_encoded() {
        let value: &RawValue = serde_json::from_str(r#""a\"b\\c\u00e9""#).unwrap();
        let out = edit_string(value, |s| {
            assert_eq!(s, "a\"b\\cé");
            Some(format!("{s}!"))
        });
        assert_eq!(out.unwrap(), r#""a\"b\\cé!""#);
        assert!(
            edit_string(value, |s| Some(s.to_owned())).is_none(),
            "same text: no edit"
        );
    }
}
