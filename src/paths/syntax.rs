//! The syntax of paths: POSIX and Windows styles, where a path is anchored (a UNC
//! share, a drive, the current drive's root, or nothing), its components after `.` and
//! `..` are resolved, and how a root's prefix covers a path.

/// How the client writes its paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `/home/me/app`: case-sensitive, `/` only.
    Posix,
    /// `C:\Users\me\app`: case-insensitive, `\` or `/`.
    Windows,
}

impl Style {
    /// The style a local root implies (or Windows when the client says so).
    pub fn of(local_root: &str, client_windows: bool) -> Style {
        let b = local_root.as_bytes();
        let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
        if client_windows || drive || local_root.contains('\\') {
            Style::Windows
        } else {
            Style::Posix
        }
    }

    /// The separator paths handed back to the client use.
    pub(super) fn separator(self) -> char {
        match self {
            Style::Posix => '/',
            Style::Windows => '\\',
        }
    }

    /// Whether `c` separates components.
    pub(super) fn is_separator(self, c: char) -> bool {
        c == '/' || (self == Style::Windows && c == '\\')
    }

    /// Whether two components (or share names) are the same.
    pub(super) fn eq(self, a: &str, b: &str) -> bool {
        match self {
            Style::Posix => a == b,
            Style::Windows => a.eq_ignore_ascii_case(b),
        }
    }
}

/// What a path starts with, before its first component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Anchor<S> {
    /// Nothing: relative to the current directory.
    Relative,
    /// `/` (Windows-style, `\` or `/`: the root of the current drive).
    Rooted,
    /// `C:`, then a separator (`rooted`: the drive's root) or not (its current directory).
    Drive { letter: u8, rooted: bool },
    /// `\\server\share` or `//server/share` (Windows-style only).
    Unc { server: S, share: S },
}

impl<S: AsRef<str>> Anchor<S> {
    /// Whether `..` stops here (rather than being kept, as in a relative path).
    pub(super) fn is_rooted(&self) -> bool {
        match self {
            Anchor::Relative => false,
            Anchor::Drive { rooted, .. } => *rooted,
            Anchor::Rooted | Anchor::Unc { .. } => true,
        }
    }

    /// Whether `other` is the same start: same kind, same drive letter, same share.
    pub(super) fn matches<T: AsRef<str>>(&self, other: &Anchor<T>, style: Style) -> bool {
        match (self, other) {
            (Anchor::Relative, Anchor::Relative) | (Anchor::Rooted, Anchor::Rooted) => true,
            (
                Anchor::Drive {
                    letter: a,
                    rooted: x,
                },
                Anchor::Drive {
                    letter: b,
                    rooted: y,
                },
            ) => a.eq_ignore_ascii_case(b) && x == y,
            (
                Anchor::Unc {
                    server: a,
                    share: x,
                },
                Anchor::Unc {
                    server: b,
                    share: y,
                },
            ) => style.eq(a.as_ref(), b.as_ref()) && style.eq(x.as_ref(), y.as_ref()),
            _ => false,
        }
    }

    /// The same anchor, owning its text.
    pub(super) fn owned(&self) -> Anchor<String> {
        match self {
            Anchor::Relative => Anchor::Relative,
            Anchor::Rooted => Anchor::Rooted,
            Anchor::Drive { letter, rooted } => Anchor::Drive {
                letter: *letter,
                rooted: *rooted,
            },
            Anchor::Unc { server, share } => Anchor::Unc {
                server: server.as_ref().to_owned(),
                share: share.as_ref().to_owned(),
            },
        }
    }
}

/// The anchor `path` starts with, and the byte offset where it ends (after the root
/// separator, if any; a UNC anchor ends after the share's name).
pub(super) fn anchor(path: &str, style: Style) -> (Anchor<&str>, usize) {
    let b = path.as_bytes();
    let sep = |i: usize| b.get(i).is_some_and(|&c| style.is_separator(char::from(c)));
    match style {
        Style::Posix if sep(0) => (Anchor::Rooted, 1),
        Style::Posix => (Anchor::Relative, 0),
        Style::Windows if sep(0) && sep(1) => unc(path, style),
        Style::Windows if sep(0) => (Anchor::Rooted, 1),
        Style::Windows if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' => {
            let rooted = sep(2);
            let letter = b[0];
            (Anchor::Drive { letter, rooted }, if rooted { 3 } else { 2 })
        }
        Style::Windows => (Anchor::Relative, 0),
    }
}

/// The UNC anchor of `path`, which starts with two separators: `\\server\share`.
pub(super) fn unc(path: &str, style: Style) -> (Anchor<&str>, usize) {
    let mut names = path[2..].splitn(3, |c| style.is_separator(c));
    let server = names.next().unwrap_or_default();
    let share = names.next();
    let end = 2 + server.len() + share.map_or(0, |s| 1 + s.len());
    let share = share.unwrap_or_default();
    (Anchor::Unc { server, share }, end)
}

/// Non-empty components of `path` with the byte offset where each ends.
pub(super) fn components(path: &str, style: Style) -> impl Iterator<Item = (&str, usize)> {
    let mut next = 0;
    path.split(move |c| style.is_separator(c))
        .filter_map(move |piece| {
            let end = next + piece.len();
            next = end + 1; // separators are one byte
            (!piece.is_empty()).then_some((piece, end))
        })
}

/// One component of a normalised path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Part<'a> {
    /// Its text.
    pub(super) text: &'a str,
    /// Its position among the path's non-empty components as written (0 in free-text
    /// tokens, which never teach spellings).
    pub(super) index: usize,
    /// The byte offset where it ends in the path (or text) it comes from.
    pub(super) end: usize,
}

/// Adds the next component to a normalised path: `.` goes (unless it starts a relative
/// path), `..` takes away the last normal component, or goes above the root, or stays
/// in a relative path.
pub(super) fn push_part<'a>(parts: &mut Vec<Part<'a>>, part: Part<'a>, rooted: bool) {
    match part.text {
        "." if rooted || part.index > 0 => {}
        ".." => match parts.last() {
            Some(last) if last.text != "." && last.text != ".." => {
                parts.pop();
            }
            _ if rooted => {}
            _ => parts.push(part),
        },
        _ => parts.push(part),
    }
}

/// A path split into its anchor and normalised components.
#[derive(Debug)]
pub(super) struct Parsed<'a> {
    /// What it starts with.
    pub(super) anchor: Anchor<&'a str>,
    /// The byte offset where the anchor ends.
    pub(super) anchor_end: usize,
    /// Its components once `.` and `..` are resolved.
    pub(super) parts: Vec<Part<'a>>,
    /// Whether normalising took nothing away.
    pub(super) untouched: bool,
}

impl<'a> Parsed<'a> {
    /// Parses and normalises `path`.
    pub(super) fn new(path: &'a str, style: Style) -> Self {
        let (anchor, anchor_end) = anchor(path, style);
        let rooted = anchor.is_rooted();
        let mut parts = Vec::new();
        let mut written = 0;
        for (index, (text, end)) in components(&path[anchor_end..], style).enumerate() {
            let end = anchor_end + end;
            push_part(&mut parts, Part { text, index, end }, rooted);
            written = index + 1;
        }
        let untouched = parts.len() == written;
        Parsed {
            anchor,
            anchor_end,
            parts,
            untouched,
        }
    }

    /// Where the anchor and first `depth` parts end if they are written as such at the
    /// start of the path (no `.` or `..` among them), so that the path's text up to there
    /// spells them.
    pub(super) fn spelled_end(&self, depth: usize) -> Option<usize> {
        match depth.checked_sub(1) {
            None => Some(self.anchor_end),
            Some(last) => self
                .parts
                .get(last)
                .filter(|p| p.index == last)
                .map(|p| p.end),
        }
    }
}

/// A root as matched: its anchor and normalised components.
#[derive(Clone, Debug)]
pub(super) struct Prefix {
    /// What it starts with.
    pub(super) anchor: Anchor<String>,
    /// Its components.
    pub(super) parts: Vec<String>,
    /// How it compares.
    pub(super) style: Style,
}

impl Prefix {
    /// The prefix of a parsed root.
    pub(super) fn of(root: &Parsed<'_>, style: Style) -> Self {
        Prefix {
            anchor: root.anchor.owned(),
            parts: root.parts.iter().map(|p| p.text.to_owned()).collect(),
            style,
        }
    }

    /// Whether the normalised path `anchor` + `parts` is this root or under it (a
    /// relative path whose next component is `..` has climbed out of it).
    pub(super) fn covers(&self, anchor: &Anchor<&str>, parts: &[Part<'_>]) -> bool {
        self.anchor.matches(anchor, self.style)
            && parts.len() >= self.parts.len()
            && self
                .parts
                .iter()
                .zip(parts)
                .all(|(r, p)| self.style.eq(r, p.text))
            && parts.get(self.parts.len()).is_none_or(|p| p.text != "..")
    }
}

/// The index of the first of the covering prefixes with the most components.
pub(super) fn longest<'r>(prefixes: impl Iterator<Item = (&'r Prefix, bool)>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (depth, index)
    for (i, (prefix, covers)) in prefixes.enumerate() {
        let depth = prefix.parts.len();
        if covers && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, i));
        }
    }
    best.map(|(_, i)| i)
}

/// `anchor` followed by `parts`, with `style`'s separator.
pub(super) fn render(anchor: &str, parts: &[Part<'_>], style: Style) -> String {
    let mut out = anchor.to_owned();
    push_parts(&mut out, 0, parts, style);
    out
}

/// Appends `parts` to the path `out` holds from byte `from` on, with `style`'s separator
/// (none after nothing, a separator or a bare drive).
pub(super) fn push_parts(out: &mut String, from: usize, parts: &[Part<'_>], style: Style) {
    for part in parts {
        let path = &out[from..];
        let bare_drive = style == Style::Windows && path.len() == 2 && path.ends_with(':');
        if !path.is_empty() && !bare_drive && !path.ends_with(|c| style.is_separator(c)) {
            out.push(style.separator());
        }
        out.push_str(part.text);
    }
}
