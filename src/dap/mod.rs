//! The Debug Adapter Protocol on the wire: [`codec`] frames, [`message`] envelopes, and
//! [`raw`] views for editing large messages without parsing all of them.

pub mod codec;
pub mod message;
pub mod raw;
