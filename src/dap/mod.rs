//! The Debug Adapter Protocol on the wire: [`codec`] frames, [`message`] envelopes.

pub mod codec;
pub mod message;
