//! Container paths inside free text (traceback lines, warnings): found in one pass
//! over the text and mapped in place.

use memchr::memmem::Finder;

use super::syntax::{Anchor, Part};
use super::{PathMapper, Root};

/// Whether a container path in free text may start after `c` (or at the text's start).
pub(super) fn may_precede_path(c: char) -> bool {
    c.is_whitespace() || "\"'(<[=,:".contains(c)
}

/// Whether `c` ends a container path in free text.
pub(super) fn ends_path(c: char) -> bool {
    c.is_whitespace() || "\"'<>),:;]`".contains(c)
}

/// A run of path characters in free text, from where a container path may start to the
/// first character that ends a path. Every later start inside it ends at the same place,
/// and which of its components survive `..` is the same for all of them (it only
/// depends on what follows), so one backwards pass serves them all.
#[derive(Debug, Default)]
pub(super) struct Token<'a> {
    /// Where it ends in the text.
    pub(super) end: usize,
    /// Its normal components that no later `..` takes away, in order, with offsets in
    /// the text.
    pub(super) live: Vec<Part<'a>>,
}

impl<'a> Token<'a> {
    /// Reads the token starting at `start` (a `/`) in `text`, reusing the buffer.
    pub(super) fn scan(&mut self, text: &'a str, start: usize) {
        let len = text[start..].find(ends_path).unwrap_or(text.len() - start);
        self.end = start + len;
        self.live.clear();
        let mut pending = 0usize; // `..` met, not yet matched with a component
        let mut end = self.end;
        for piece in text[start..self.end].rsplit('/') {
            match piece {
                "" | "." => {}
                ".." => pending += 1,
                _ if pending > 0 => pending -= 1,
                _ => self.live.push(Part {
                    text: piece,
                    index: 0,
                    end,
                }),
            }
            end = (end - piece.len()).saturating_sub(1);
        }
        self.live.reverse();
    }

    /// The normalised components of the path from `start` (a `/` inside the token) to
    /// its end; `..` above the root are dropped.
    pub(super) fn from(&self, start: usize) -> &[Part<'a>] {
        &self.live[self.live.partition_point(|p| p.end <= start)..]
    }
}

impl PathMapper {
    /// Replaces container paths inside free text (traceback lines such as
    /// `File "/usr/src/app/x.py", line 3`) with IDE paths. `None` if nothing changed.
    /// A path runs from an occurrence of a container root (at the start, after a space,
    /// quote, bracket, `=`, `,` or `:`) to the next space, quote, bracket, `,`, `:` or
    /// `;`; where paths found this way overlap, the first one that maps wins. Time is
    /// linear in the text.
    pub fn text_to_local(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut at = 0; // end of what has been replaced
        let mut token = Token::default();
        for start in self.path_starts(text) {
            if start < at {
                continue;
            }
            if start >= token.end {
                token.scan(text, start);
            }
            let Some((root, rest)) = self.best_remote(&Anchor::Rooted, token.from(start)) else {
                continue;
            };
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() * 5 / 4));
            out.push_str(&text[at..start]);
            root.write_local(rest, out);
            at = token.end;
        }
        let mut out = out?;
        out.push_str(&text[at..]);
        Some(out)
    }

    /// Where container paths may start in `text`, in order: each place one of the
    /// needles occurs after a character that may precede a path.
    fn path_starts(&self, text: &str) -> Vec<usize> {
        let mut starts: Vec<usize> = self
            .needles
            .iter()
            .flat_map(|n| n.find_iter(text.as_bytes()))
            .filter(|&s| text[..s].chars().next_back().is_none_or(may_precede_path))
            .collect();
        if self.needles.len() > 1 {
            starts.sort_unstable();
            starts.dedup();
        }
        starts
    }
}

/// Finders for the container roots to look for in free text: rooted ones other than `/`
/// (a relative root or `/` would match ordinary words), leaving out any that starts with
/// another (wherever it occurs, the shorter one does too).
pub(super) fn needles(roots: &[Root]) -> Vec<Finder<'static>> {
    let mut texts: Vec<&str> = roots
        .iter()
        .filter(|r| matches!(r.remote_prefix.anchor, Anchor::Rooted))
        .filter(|r| !r.remote_prefix.parts.is_empty())
        .map(|r| r.remote.as_str())
        .collect();
    texts.sort_unstable();
    texts.dedup();
    texts
        .iter()
        .filter(|t| !texts.iter().any(|o| o != *t && t.starts_with(o)))
        .map(|t| Finder::new(t.as_bytes()).into_owned())
        .collect()
}
