//! A lightly typed DAP message: the envelope fields the proxy routes on (`type`, `seq`,
//! `command`/`event`, `request_seq`, `success`) and the original bytes.
//!
//! A message that is not rewritten is forwarded as the exact bytes that arrived, so
//! unknown fields, custom debugpy messages and number formatting survive untouched. A
//! rewrite parses the body once into an order-preserving JSON map, edits it, and
//! re-serializes only if something changed.

use bytes::Bytes;
use serde::{Deserialize, de};
use serde_json::{Map, Value};

/// The `type` of a DAP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request (from the client, or a reverse request from the adapter).
    Request,
    /// A response to a request.
    Response,
    /// An event.
    Event,
    /// Any other `type`: passed through, never interpreted.
    Other(String),
}

/// Why bytes are not a DAP message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, not an object, or an envelope field of the wrong type.
    #[error("invalid DAP message: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The envelope as it appears on the wire; every other field is skipped here.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<i64>,
    command: Option<String>,
    event: Option<String>,
    request_seq: Option<i64>,
    success: Option<bool>,
}

/// The envelope fields found at the start of a message, up to its `body` or
/// `arguments`: enough to route a large message before it has fully arrived.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Peek {
    /// `type`, if it came first.
    pub kind: Option<String>,
    /// `command` (or `event`), if it came first.
    pub name: Option<String>,
    /// `success`, if it came first.
    pub success: Option<bool>,
}

impl Peek {
    /// Reads the top-level fields at the start of `prefix` (the first bytes of a body),
    /// stopping at `body`/`arguments` or where `prefix` ends. Anything unexpected just
    /// ends the reading; what was found so far is kept.
    pub fn of(prefix: &[u8]) -> Peek {
        let mut peek = Peek::default();
        let mut de = serde_json::Deserializer::from_slice(prefix);
        let _ = de::DeserializeSeed::deserialize(PeekSeed(&mut peek), &mut de);
        peek
    }
}

/// Fills a [`Peek`] while reading a map's entries in order.
struct PeekSeed<'a>(&'a mut Peek);

impl<'de> de::DeserializeSeed<'de> for PeekSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for PeekSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a DAP message")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => self.0.kind = Some(map.next_value()?),
                "command" | "event" => self.0.name = Some(map.next_value()?),
                "success" => self.0.success = Some(map.next_value()?),
                "body" | "arguments" => return Err(de::Error::custom("envelope ends here")),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One DAP message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The message's `type`.
    pub kind: Kind,
    /// Its `seq` (0 if absent).
    pub seq: i64,
    /// `command` for requests and responses, `event` for events.
    pub name: String,
    /// `request_seq` of a response.
    pub request_seq: Option<i64>,
    /// `success` of a response.
    pub success: Option<bool>,
    /// The body as it will be sent.
    bytes: Bytes,
}

impl Message {
    /// Parses the envelope of a frame body, validating that it is one JSON object.
    pub fn parse(bytes: Bytes) -> Result<Message, MessageError> {
        let env: Envelope = serde_json::from_slice(&bytes)?;
        let kind = match env.kind.as_str() {
            "request" => Kind::Request,
            "response" => Kind::Response,
            "event" => Kind::Event,
            _ => Kind::Other(env.kind),
        };
        let name = match kind {
            Kind::Event => env.event,
            _ => env.command,
        }
        .unwrap_or_default();
        Ok(Message {
            kind,
            seq: env.seq.unwrap_or(0),
            name,
            request_seq: env.request_seq,
            success: env.success,
            bytes,
        })
    }

    /// Builds a message from a JSON object (for messages the sidecar writes itself).
    pub fn from_map(map: Map<String, Value>) -> Message {
        let bytes = Bytes::from(serde_json::to_vec(&Value::Object(map)).unwrap_or_default());
        // Serializing a map and parsing its envelope back cannot fail for the objects the
        // sidecar builds; fall back to an inert event rather than panic.
        Message::parse(bytes).unwrap_or_else(|_| Message {
            kind: Kind::Event,
            seq: 0,
            name: String::new(),
            request_seq: None,
            success: None,
            bytes: Bytes::from_static(b"{\"type\":\"event\",\"seq\":0,\"event\":\"\"}"),
        })
    }

    /// Whether this is a request with the given command.
    pub fn is_request(&self, command: &str) -> bool {
        self.kind == Kind::Request && self.name == command
    }

    /// Whether this is an event with the given name.
    pub fn is_event(&self, event: &str) -> bool {
        self.kind == Kind::Event && self.name == event
    }

    /// The body to send.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole message as a JSON object.
    pub fn to_map(&self) -> Result<Map<String, Value>, MessageError> {
        Ok(serde_json::from_slice(&self.bytes)?)
    }

    /// Lets `edit` change the message; if it reports a change, the message is
    /// re-serialized (the envelope fields must stay as they are).
    pub fn rewrite(
        &mut self,
        edit: impl FnOnce(&mut Map<String, Value>) -> bool,
    ) -> Result<bool, MessageError> {
        let mut map = self.to_map()?;
        if !edit(&mut map) {
            return Ok(false);
        }
        self.set_map(map)?;
        Ok(true)
    }

    /// Replaces the message with `map`, a [`Message::to_map`] of it since edited (the
    /// envelope fields must stay as they are): the end of a [`Message::rewrite`] for an
    /// edit that keeps the map across several steps.
    pub fn set_map(&mut self, map: Map<String, Value>) -> Result<(), MessageError> {
        self.bytes = Bytes::from(serde_json::to_vec(&Value::Object(map))?);
        Ok(())
    }

    /// Lets `edit` replace the body's bytes (returning `None` keeps them); `edit` must
    /// leave the envelope fields as they are.
    pub fn rewrite_bytes(&mut self, edit: impl FnOnce(&[u8]) -> Option<String>) -> bool {
        match edit(&self.bytes) {
            Some(new) => {
                self.bytes = Bytes::from(new);
                true
            }
            None => false,
        }
    }

    /// Whether the raw body contains `needle` (a cheap pre-filter before parsing).
    pub fn contains(&self, needle: &[u8]) -> bool {
        memchr::memmem::find(&self.bytes, needle).is_some()
    }
}

/// Builds `{"seq":..,"type":"response",...}` answering `request`.
pub fn response(seq: i64, request: &Message, result: Result<Value, String>) -> Message {
    let mut map = Map::new();
    map.insert("seq".into(), seq.into());
    map.insert("type".into(), "response".into());
    map.insert("request_seq".into(), request.seq.into());
    map.insert("command".into(), request.name.clone().into());
    match result {
        Ok(body) => {
            map.insert("success".into(), true.into());
            map.insert("body".into(), body);
        }
        Err(message) => {
            map.insert("success".into(), false.into());
            map.insert("message".into(), message.clone().into());
            map.insert(
                "body".into(),
                serde_json::json!({ "error": { "id": 1, "format": message, "showUser": true } }),
            );
        }
    }
    Message::from_map(map)
}

/// Builds an event.
pub fn event(seq: i64, name: &str, body: Value) -> Message {
    let mut map = Map::new();
    map.insert("seq".into(), seq.into());
    map.insert("type".into(), "event".into());
    map.insert("event".into(), name.into());
    map.insert("body".into(), body);
    Message::from_map(map)
}

/// Builds a request.
pub fn request(seq: i64, command: &str, arguments: Value) -> Message {
    let mut map = Map::new();
    map.insert("seq".into(), seq.into());
    map.insert("type".into(), "request".into());
    map.insert("command".into(), command.into());
    map.insert("arguments".into(), arguments);
    Message::from_map(map)
}

/// An `output` event on the console category, how the sidecar talks to the user.
pub fn console(seq: i64, text: &str) -> Message {
    event(
        seq,
        "output",
        serde_json::json!({ "category": "console", "output": format!("{text}\n") }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_custom_messages_pass_byte_for_byte() {
        let raw = br#"{"seq":7,"type":"event","event":"debugpySockets","body":{"sockets":[{"host":"127.0.0.1","port":1.50}]},"x-extra":[1,2]}"#;
        let m = Message::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(m.kind, Kind::Event);
        assert_eq!(m.name, "debugpySockets");
        assert_eq!(m.seq, 7);
        assert_eq!(m.bytes().as_ref(), raw);
    }

    #[test]
    fn rewrite_keeps_field_order_and_only_reserializes_on_change() {
        let raw = br#"{"seq":1,"type":"request","command":"x","z":1,"a":{"b":2.50}}"#;
        let mut m = Message::parse(Bytes::from_static(raw)).unwrap();
        assert!(!m.rewrite(|_| false).unwrap());
        assert_eq!(m.bytes().as_ref(), raw);
        assert!(
            m.rewrite(|map| map.insert("n".into(), 3.into()).is_none())
                .unwrap()
        );
        assert_eq!(
            std::str::from_utf8(m.bytes()).unwrap(),
            r#"{"seq":1,"type":"request","command":"x","z":1,"a":{"b":2.5},"n":3}"#
        );
    }

    #[test]
    fn other_types_are_kept() {
        let m = Message::parse(Bytes::from_static(br#"{"type":"weird"}"#)).unwrap();
        assert_eq!(m.kind, Kind::Other("weird".into()));
    }

    #[test]
    fn invalid_messages_are_errors() {
        for raw in [&b"[]"[..], b"{", b"{\"seq\":1}", b"{\"type\":1}", b"\xff"] {
            assert!(Message::parse(Bytes::copy_from_slice(raw)).is_err());
        }
    }

    #[test]
    fn responses_answer_their_request() {
        let req = Message::parse(Bytes::from_static(
            br#"{"seq":4,"type":"request","command":"attach"}"#,
        ))
        .unwrap();
        let r = response(9, &req, Err("no".into()));
        let map = r.to_map().unwrap();
        assert_eq!(map["request_seq"], 4);
        assert_eq!(map["success"], false);
        assert_eq!(map["message"], "no");
        assert_eq!(r.success, Some(false));
    }

    #[test]
    fn peek_reads_the_envelope_before_the_body_only() {
        let debugpy = br#"{"seq": 9, "type": "response", "request_seq": 8, "success": true, "command": "variables", "body": {"variables": [{"name": "#;
        assert_eq!(
            Peek::of(debugpy),
            Peek {
                kind: Some("response".into()),
                name: Some("variables".into()),
                success: Some(true),
            }
        );
        let body_first = br#"{"body": {"x": 1}, "type": "response", "command": "variables"}"#;
        assert_eq!(Peek::of(body_first), Peek::default());
        assert_eq!(Peek::of(b"\xff\xfe garbage").kind, None);
        assert_eq!(
            Peek::of(br#"{"type": "resp"#).kind,
            None,
            "a cut-off value is not a value"
        );
    }
}
