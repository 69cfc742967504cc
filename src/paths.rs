//! Path mapping between the IDE's checkout ("local") and the container ("remote").
//!
//! Unlike pydevd's plain string prefixes (first match wins, `/usr/src/app` also matching
//! `/usr/src/app2`), roots here match whole path components and the longest root wins.
//! Paths are normalised lexically before matching: `.` goes and `..` takes away the
//! component before it, stopping at the path's root as an OS does at `/`, so
//! `/home/me/app/../secret` is not under `/home/me/app`. A relative path keeps a leading
//! `.` and the `..` it cannot resolve, and is not under a root it climbs out of.
//! A local root is Windows-style when it has a drive letter or a backslash, or when the
//! client said `clientOS: windows`; then it matches case-insensitively with either
//! separator, and only paths that start the same way: from the same UNC share
//! (`\\server\share`), from the same drive's root (`C:\`) or current directory (`C:`),
//! from the current drive's root (`\`), or relative. Paths handed back to the client use
//! the client's own spelling of the root (as last seen in one of its requests: VS Code
//! may send `c:` where the config says `C:`) and its separator.

use memchr::memmem::Finder;

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
    fn separator(self) -> char {
        match self {
            Style::Posix => '/',
            Style::Windows => '\\',
        }
    }

    /// Whether `c` separates components.
    fn is_separator(self, c: char) -> bool {
        c == '/' || (self == Style::Windows && c == '\\')
    }

    /// Whether two components (or share names) are the same.
    fn eq(self, a: &str, b: &str) -> bool {
        match self {
            Style::Posix => a == b,
            Style::Windows => a.eq_ignore_ascii_case(b),
        }
    }
}

/// What a path starts with, before its first component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor<S> {
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
    fn is_rooted(&self) -> bool {
        match self {
            Anchor::Relative => false,
            Anchor::Drive { rooted, .. } => *rooted,
            Anchor::Rooted | Anchor::Unc { .. } => true,
        }
    }

    /// Whether `other` is the same start: same kind, same drive letter, same share.
    fn matches<T: AsRef<str>>(&self, other: &Anchor<T>, style: Style) -> bool {
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
    fn owned(&self) -> Anchor<String> {
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
fn anchor(path: &str, style: Style) -> (Anchor<&str>, usize) {
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
fn unc(path: &str, style: Style) -> (Anchor<&str>, usize) {
    let mut names = path[2..].splitn(3, |c| style.is_separator(c));
    let server = names.next().unwrap_or_default();
    let share = names.next();
    let end = 2 + server.len() + share.map_or(0, |s| 1 + s.len());
    let share = share.unwrap_or_default();
    (Anchor::Unc { server, share }, end)
}

/// Non-empty components of `path` with the byte offset where each ends.
fn components(path: &str, style: Style) -> impl Iterator<Item = (&str, usize)> {
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
struct Part<'a> {
    /// Its text.
    text: &'a str,
    /// Its position among the path's non-empty components as written (0 in free-text
    /// tokens, which never teach spellings).
    index: usize,
    /// The byte offset where it ends in the path (or text) it comes from.
    end: usize,
}

/// Adds the next component to a normalised path: `.` goes (unless it starts a relative
/// path), `..` takes away the last normal component, or goes above the root, or stays
/// in a relative path.
fn push_part<'a>(parts: &mut Vec<Part<'a>>, part: Part<'a>, rooted: bool) {
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
struct Parsed<'a> {
    /// What it starts with.
    anchor: Anchor<&'a str>,
    /// The byte offset where the anchor ends.
    anchor_end: usize,
    /// Its components once `.` and `..` are resolved.
    parts: Vec<Part<'a>>,
    /// Whether normalising took nothing away.
    untouched: bool,
}

impl<'a> Parsed<'a> {
    /// Parses and normalises `path`.
    fn new(path: &'a str, style: Style) -> Self {
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
    fn spelled_end(&self, depth: usize) -> Option<usize> {
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
struct Prefix {
    /// What it starts with.
    anchor: Anchor<String>,
    /// Its components.
    parts: Vec<String>,
    /// How it compares.
    style: Style,
}

impl Prefix {
    /// The prefix of a parsed root.
    fn of(root: &Parsed<'_>, style: Style) -> Self {
        Prefix {
            anchor: root.anchor.owned(),
            parts: root.parts.iter().map(|p| p.text.to_owned()).collect(),
            style,
        }
    }

    /// Whether the normalised path `anchor` + `parts` is this root or under it (a
    /// relative path whose next component is `..` has climbed out of it).
    fn covers(&self, anchor: &Anchor<&str>, parts: &[Part<'_>]) -> bool {
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
fn longest<'r>(prefixes: impl Iterator<Item = (&'r Prefix, bool)>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (depth, index)
    for (i, (prefix, covers)) in prefixes.enumerate() {
        let depth = prefix.parts.len();
        if covers && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, i));
        }
    }
    best.map(|(_, i)| i)
}

/// One root pair.
#[derive(Clone, Debug)]
struct Root {
    /// The local root as configured, without trailing separators (rebuilt from its
    /// components if it had `.` or `..`).
    local: String,
    /// The container root, normalised, without trailing `/` (but `/` itself stays).
    remote: String,
    /// How the local side is written.
    style: Style,
    /// The local root as matched.
    local_prefix: Prefix,
    /// The container root as matched.
    remote_prefix: Prefix,
    /// The client's own spelling of `local`, learned from its requests.
    spelling: Option<String>,
}

impl Root {
    /// Parses one pair, once, for all the paths it will be matched against.
    fn new(local: &str, remote: &str, client_windows: bool) -> Self {
        let style = Style::of(local, client_windows);
        let local_path = Parsed::new(local, style);
        let remote_path = Parsed::new(remote, Style::Posix);
        let local_text = if local_path.untouched {
            let end = local_path
                .parts
                .last()
                .map_or(local_path.anchor_end, |p| p.end);
            local[..end].to_owned()
        } else {
            render(&local[..local_path.anchor_end], &local_path.parts, style)
        };
        Root {
            local: local_text,
            remote: render(
                &remote[..remote_path.anchor_end],
                &remote_path.parts,
                Style::Posix,
            ),
            style,
            local_prefix: Prefix::of(&local_path, style),
            remote_prefix: Prefix::of(&remote_path, Style::Posix),
            spelling: None,
        }
    }

    /// Appends the local path of the container components `rest` below this root to
    /// `out`, in the client's spelling and style.
    fn write_local(&self, rest: &[Part<'_>], out: &mut String) {
        let from = out.len();
        out.push_str(self.spelling.as_deref().unwrap_or(&self.local));
        push_parts(out, from, rest, self.style);
    }
}

/// `anchor` followed by `parts`, with `style`'s separator.
fn render(anchor: &str, parts: &[Part<'_>], style: Style) -> String {
    let mut out = anchor.to_owned();
    push_parts(&mut out, 0, parts, style);
    out
}

/// Appends `parts` to the path `out` holds from byte `from` on, with `style`'s separator
/// (none after nothing, a separator or a bare drive).
fn push_parts(out: &mut String, from: usize, parts: &[Part<'_>], style: Style) {
    for part in parts {
        let path = &out[from..];
        let bare_drive = style == Style::Windows && path.len() == 2 && path.ends_with(':');
        if !path.is_empty() && !bare_drive && !path.ends_with(|c| style.is_separator(c)) {
            out.push(style.separator());
        }
        out.push_str(part.text);
    }
}

/// Whether a container path in free text may start after `c` (or at the text's start).
fn may_precede_path(c: char) -> bool {
    c.is_whitespace() || "\"'(<[=,:".contains(c)
}

/// Whether `c` ends a container path in free text.
fn ends_path(c: char) -> bool {
    c.is_whitespace() || "\"'<>),:;]`".contains(c)
}

/// A run of path characters in free text, from where a container path may start to the
/// first character that ends a path. Every later start inside it ends at the same place,
/// and which of its components survive `..` is the same for all of them (it only
/// depends on what follows), so one backwards pass serves them all.
#[derive(Debug, Default)]
struct Token<'a> {
    /// Where it ends in the text.
    end: usize,
    /// Its normal components that no later `..` takes away, in order, with offsets in
    /// the text.
    live: Vec<Part<'a>>,
}

impl<'a> Token<'a> {
    /// Reads the token starting at `start` (a `/`) in `text`, reusing the buffer.
    fn scan(&mut self, text: &'a str, start: usize) {
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
    fn from(&self, start: usize) -> &[Part<'a>] {
        &self.live[self.live.partition_point(|p| p.end <= start)..]
    }
}

/// Maps paths for one session.
#[derive(Clone, Debug, Default)]
pub struct PathMapper {
    /// The roots; searched longest first on the side being matched.
    roots: Vec<Root>,
    /// Finders for the container roots worth looking for in free text.
    needles: Vec<Finder<'static>>,
}

impl PathMapper {
    /// Builds a mapper from `(local_root, remote_root)` pairs.
    pub fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        client_windows: bool,
    ) -> Self {
        let roots: Vec<Root> = pairs
            .into_iter()
            .map(|(local, remote)| Root::new(local, remote, client_windows))
            .collect();
        let needles = needles(&roots);
        PathMapper { roots, needles }
    }

    /// Whether there is nothing to map.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The container roots, for cheap pre-filtering of messages.
    pub fn remote_roots(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|r| r.remote.as_str())
    }

    /// Maps an IDE path to the container, learning the client's spelling of the root.
    pub fn to_remote(&mut self, path: &str) -> Option<String> {
        let (i, parsed) = self.best_local(path)?;
        let root = self.roots.get_mut(i)?;
        let depth = root.local_prefix.parts.len();
        if let Some(end) = parsed.spelled_end(depth) {
            let spelled = &path[..end];
            if root.spelling.as_deref() != Some(spelled) {
                root.spelling = Some(spelled.to_owned());
            }
        }
        Some(render(
            &root.remote,
            parsed.parts.get(depth..)?,
            Style::Posix,
        ))
    }

    /// Maps a container path to the IDE, in the client's style.
    pub fn to_local(&self, path: &str) -> Option<String> {
        let parsed = Parsed::new(path, Style::Posix);
        let (root, rest) = self.best_remote(&parsed.anchor, &parsed.parts)?;
        let mut out = String::new();
        root.write_local(rest, &mut out);
        Some(out)
    }

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

    /// The root whose local side covers `path` with the most components (the first one
    /// configured on a tie), and `path` parsed in that root's style.
    fn best_local<'p>(&self, path: &'p str) -> Option<(usize, Parsed<'p>)> {
        let parse = |style| {
            self.roots
                .iter()
                .any(|r| r.style == style)
                .then(|| Parsed::new(path, style))
        };
        let (posix, windows) = (parse(Style::Posix), parse(Style::Windows));
        let parsed = |style| match style {
            Style::Posix => posix.as_ref(),
            Style::Windows => windows.as_ref(),
        };
        let i = longest(self.roots.iter().map(|r| {
            let covers =
                parsed(r.style).is_some_and(|p| r.local_prefix.covers(&p.anchor, &p.parts));
            (&r.local_prefix, covers)
        }))?;
        let parsed = match self.roots.get(i)?.style {
            Style::Posix => posix,
            Style::Windows => windows,
        };
        Some((i, parsed?))
    }

    /// The root whose container side covers the normalised container path `anchor` +
    /// `parts` with the most components, and the components below it.
    fn best_remote<'s, 'p>(
        &self,
        anchor: &Anchor<&str>,
        parts: &'s [Part<'p>],
    ) -> Option<(&Root, &'s [Part<'p>])> {
        let i = longest(
            self.roots
                .iter()
                .map(|r| (&r.remote_prefix, r.remote_prefix.covers(anchor, parts))),
        )?;
        let root = self.roots.get(i)?;
        Some((root, parts.get(root.remote_prefix.parts.len()..)?))
    }
}

/// Finders for the container roots to look for in free text: rooted ones other than `/`
/// (a relative root or `/` would match ordinary words), leaving out any that starts with
/// another (wherever it occurs, the shorter one does too).
fn needles(roots: &[Root]) -> Vec<Finder<'static>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    const PENNY: &str = r"c:\Users\Penny\Documents\Software\home-assistant\";

    #[test]
    fn seed_example_maps_both_ways_with_either_drive_case() {
        let mut m = PathMapper::new([(PENNY, "/usr/src/app")], false);
        assert_eq!(
            m.to_remote(r"C:\Users\Penny\Documents\Software\home-assistant\homeassistant\core.py")
                .as_deref(),
            Some("/usr/src/app/homeassistant/core.py")
        );
        // The client spelled the drive `C:`: answers come back that way.
        assert_eq!(
            m.to_local("/usr/src/app/homeassistant/core.py").as_deref(),
            Some(r"C:\Users\Penny\Documents\Software\home-assistant\homeassistant\core.py")
        );
        assert_eq!(
            m.to_remote("c:/users/penny/documents/software/home-assistant/a.py")
                .as_deref(),
            Some("/usr/src/app/a.py")
        );
    }

    #[test]
    fn unspelled_roots_come_back_as_configured() {
        let m = PathMapper::new([(PENNY, "/usr/src/app")], false);
        assert_eq!(
            m.to_local("/usr/src/app/x/y.py").as_deref(),
            Some(r"c:\Users\Penny\Documents\Software\home-assistant\x\y.py")
        );
    }

    #[test]
    fn matching_is_by_component_and_longest_root_first() {
        let mut m = PathMapper::new(
            [
                ("/home/me/app", "/usr/src/app"),
                ("/home/me/lib", "/usr/src/app/lib"),
            ],
            false,
        );
        assert_eq!(m.to_local("/usr/src/app2/x.py"), None);
        assert_eq!(
            m.to_local("/usr/src/app/lib/x.py").as_deref(),
            Some("/home/me/lib/x.py")
        );
        assert_eq!(
            m.to_local("/usr/src/app/main.py").as_deref(),
            Some("/home/me/app/main.py")
        );
        assert_eq!(m.to_remote("/home/me/application/x.py"), None);
        assert_eq!(m.to_remote("home/me/app/x.py"), None);
        assert_eq!(
            m.to_remote("/home/me/lib/a.py").as_deref(),
            Some("/usr/src/app/lib/a.py")
        );
    }

    #[test]
    fn posix_is_case_sensitive() {
        let mut m = PathMapper::new([("/home/Me/app", "/usr/src/app")], false);
        assert_eq!(m.to_remote("/home/me/app/x.py"), None);
    }

    #[test]
    fn client_os_windows_makes_matching_case_insensitive() {
        let mut m = PathMapper::new([("/Users/Me/app", "/usr/src/app")], true);
        assert_eq!(
            m.to_remote("/users/me/APP/x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
    }

    #[test]
    fn traceback_text_is_mapped() {
        let m = PathMapper::new([(PENNY, "/usr/src/app")], false);
        let text = "Traceback (most recent call last):\n  File \"/usr/src/app/main.py\", line 3, in <module>\n  File \"/usr/src/app2/x.py\", line 1\n  File \"/usr/lib/python3.11/x.py\", line 9\n/usr/src/app/w.py:12: UserWarning";
        let out = m.text_to_local(text).expect("changed");
        assert!(
            out.contains(
                r#"File "c:\Users\Penny\Documents\Software\home-assistant\main.py", line 3"#
            ),
            "{out}"
        );
        assert!(out.contains("/usr/src/app2/x.py"));
        assert!(out.contains("/usr/lib/python3.11/x.py"));
        assert!(out.contains(r"home-assistant\w.py:12: UserWarning"));
        assert_eq!(m.text_to_local("nothing here"), None);
    }

    /// The old quadratic algorithm (every occurrence of every rooted container root,
    /// checked against every span found before), as the reference for `text_to_local`.
    fn text_to_local_reference(m: &PathMapper, text: &str) -> Option<String> {
        let mut spans: Vec<(usize, usize, String)> = Vec::new();
        for root in &m.roots {
            if !matches!(root.remote_prefix.anchor, Anchor::Rooted) || root.remote == "/" {
                continue;
            }
            for (start, _) in text.match_indices(root.remote.as_str()) {
                let boundary_ok = text[..start]
                    .chars()
                    .next_back()
                    .is_none_or(may_precede_path);
                if !boundary_ok || spans.iter().any(|(s, e, _)| start >= *s && start < *e) {
                    continue;
                }
                let end = start + text[start..].find(ends_path).unwrap_or(text.len() - start);
                if let Some(local) = m.to_local(&text[start..end]) {
                    spans.push((start, end, local));
                }
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_by_key(|(s, _, _)| *s);
        let mut out = String::new();
        let mut at = 0;
        for (start, end, local) in spans {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&local);
            at = end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// The fastest of `runs` timings of `f`.
    fn fastest(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
        (0..runs).map(|_| f()).min().unwrap_or_default()
    }

    #[test]
    fn text_mapping_is_linear() {
        let m = PathMapper::new(
            [
                ("/home/me/app", "/usr/src/app"),
                ("/home/me/lib", "/usr/src/app/lib"),
            ],
            false,
        );
        let time = |n: usize| {
            let text: String = (0..n)
                .map(|i| format!("  File \"/usr/src/app/pkg/mod{i}.py\", line 3\n"))
                .collect();
            fastest(3, || {
                let started = Instant::now();
                let out = m.text_to_local(&text).expect("changed");
                let took = started.elapsed();
                assert_eq!(out.matches("\"/home/me/app/pkg/mod").count(), n);
                assert!(!out.contains("/usr/src/app"));
                took
            })
        };
        let small = time(20_000);
        let large = time(200_000);
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
        eprintln!(
            "text_to_local: 20,000 paths in {small:?}, 200,000 paths in {large:?} (ratio {ratio:.1})"
        );
        assert!(ratio < 30.0, "not linear: ratio {ratio:.1}");
    }

    #[test]
    fn text_mapping_of_one_long_token_is_linear() {
        // Many starts inside one run without a path end, none of which maps until the
        // last: each start must not rescan the rest of the run.
        let m = PathMapper::new([("/home/me/app", "/usr/src/app")], false);
        let time = |n: usize| {
            let text = format!("{}=/usr/src/app/x.py", "/usr/src/app2=".repeat(n));
            fastest(3, || {
                let started = Instant::now();
                let out = m.text_to_local(&text).expect("changed");
                let took = started.elapsed();
                assert!(out.ends_with("=/home/me/app/x.py"));
                assert_eq!(out.matches("/usr/src/app2=").count(), n);
                took
            })
        };
        let small = time(20_000);
        let large = time(200_000);
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
        eprintln!("one token: 20,000 starts in {small:?}, 200,000 in {large:?} (ratio {ratio:.1})");
        assert!(ratio < 30.0, "not linear: ratio {ratio:.1}");
    }

    #[test]
    fn text_mapping_uses_the_longest_root_and_skips_overlaps() {
        let m = PathMapper::new(
            [
                ("/home/me/app", "/usr/src/app"),
                ("/home/me/lib", "/usr/src/app/lib"),
            ],
            false,
        );
        let text = "a /usr/src/app/lib/x.py b /usr/src/app/y.py c=/usr/src/app2=/usr/src/app/z.py \"/usr/src/app/a=/usr/src/app/b\"";
        let out = m.text_to_local(text).expect("changed");
        assert_eq!(
            out,
            "a /home/me/lib/x.py b /home/me/app/y.py c=/usr/src/app2=/home/me/app/z.py \"/home/me/app/a=/usr/src/app/b\""
        );
        assert_eq!(m.text_to_local(text), text_to_local_reference(&m, text));
    }

    #[test]
    fn dots_are_resolved_before_matching() {
        let mut m = PathMapper::new(
            [
                ("/home/me/app", "/usr/src/app"),
                ("/home/me/lib", "/srv/lib"),
            ],
            false,
        );
        assert_eq!(m.to_remote("/home/me/app/../secret/x.py"), None);
        assert_eq!(m.to_remote("/home/me/app/.."), None);
        assert_eq!(
            m.to_remote("/home/me/app/./pkg/../x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
        // `..` above `/` stays at `/`, as the OS does.
        assert_eq!(
            m.to_remote("/../../home/me/app/x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
        // Leaving one root into another maps through the other.
        assert_eq!(
            m.to_remote("/home/me/app/../lib/y.py").as_deref(),
            Some("/srv/lib/y.py")
        );
        assert_eq!(m.to_local("/usr/src/app/../../etc/passwd"), None);
        assert_eq!(m.to_local("/usr/src/app/x/../../app2/y.py"), None);
        assert_eq!(
            m.to_local("/usr/src/app/x/../y.py").as_deref(),
            Some("/home/me/app/y.py")
        );
        assert_eq!(
            m.to_local("/srv/x/../lib/./z.py").as_deref(),
            Some("/home/me/lib/z.py")
        );
        let text = "File \"/usr/src/app/../secret.py\", File \"/usr/src/app/a/../b.py\"";
        assert_eq!(
            m.text_to_local(text).as_deref(),
            Some("File \"/usr/src/app/../secret.py\", File \"/home/me/app/b.py\"")
        );
    }

    #[test]
    fn windows_dots_are_resolved_and_stop_at_the_root() {
        let mut m = PathMapper::new(
            [
                (r"C:\Work\App", "/usr/src/app"),
                (r"\\server\share\proj", "/srv/proj"),
            ],
            false,
        );
        assert_eq!(m.to_remote(r"C:\Work\App\..\..\secret.py"), None);
        assert_eq!(m.to_remote(r"c:/work/app/../App2/x.py"), None);
        assert_eq!(
            m.to_remote(r"C:\..\..\Work\.\App\x\..\y.py").as_deref(),
            Some("/usr/src/app/y.py")
        );
        assert_eq!(m.to_remote(r"\\server\share\proj\..\other\x.py"), None);
        assert_eq!(
            m.to_remote(r"\\server\share\..\..\proj\x.py").as_deref(),
            Some("/srv/proj/x.py")
        );
        // A spelling with dots in the root's part is not learned.
        assert_eq!(
            m.to_local("/usr/src/app/a.py").as_deref(),
            Some(r"C:\Work\App\a.py")
        );
        assert_eq!(
            m.to_remote(r"c:\work\x\..\app\b.py").as_deref(),
            Some("/usr/src/app/b.py")
        );
        assert_eq!(
            m.to_local("/usr/src/app/a.py").as_deref(),
            Some(r"C:\Work\App\a.py")
        );
    }

    #[test]
    fn relative_paths_keep_what_they_cannot_resolve() {
        let mut m = PathMapper::new([("/home/me/app", ".")], false);
        assert_eq!(
            m.to_remote("/home/me/app/x/../y.py").as_deref(),
            Some("./y.py")
        );
        assert_eq!(
            m.to_local("./a/../b.py").as_deref(),
            Some("/home/me/app/b.py")
        );
        assert_eq!(m.to_local("./../b.py"), None);
        assert_eq!(m.to_local("./a/../../b.py"), None);
        assert_eq!(m.to_local("<string>"), None);
        // A relative container root is not looked for in free text.
        assert_eq!(m.text_to_local("see ./x.py and ."), None);
    }

    #[test]
    fn unc_root_does_not_match_a_path_rooted_on_the_current_drive() {
        let mut m = PathMapper::new([(r"\\server\share", "/usr/src/app")], false);
        assert_eq!(m.to_remote(r"\server\share\x.py"), None);
        assert_eq!(m.to_remote(r"C:\server\share\x.py"), None);
        assert_eq!(m.to_remote(r"\\server\other\x.py"), None);
        assert_eq!(m.to_remote(r"\\elsewhere\share\x.py"), None);
        assert_eq!(
            m.to_remote("//server/share/x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
    }

    #[test]
    fn unc_share_matches_in_any_case_and_comes_back_in_the_clients_spelling() {
        let mut m = PathMapper::new([(r"\\server\share\", "/usr/src/app")], false);
        assert_eq!(
            m.to_local("/usr/src/app/b.py").as_deref(),
            Some(r"\\server\share\b.py")
        );
        assert_eq!(
            m.to_remote(r"\\SERVER\Share\a.py").as_deref(),
            Some("/usr/src/app/a.py")
        );
        assert_eq!(
            m.to_local("/usr/src/app/pkg/b.py").as_deref(),
            Some(r"\\SERVER\Share\pkg\b.py")
        );
        assert_eq!(
            m.to_local("/usr/src/app").as_deref(),
            Some(r"\\SERVER\Share")
        );
    }

    #[test]
    fn windows_prefix_kinds_only_match_their_own_kind() {
        let mut drive = PathMapper::new([(r"C:\app", "/usr/src/app")], false);
        assert_eq!(drive.to_remote(r"D:\app\x.py"), None);
        assert_eq!(drive.to_remote(r"C:app\x.py"), None); // C:'s current directory
        assert_eq!(drive.to_remote(r"\app\x.py"), None);
        assert_eq!(drive.to_remote(r"app\x.py"), None);
        assert_eq!(
            drive.to_remote("c:/APP/x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
        let mut rooted = PathMapper::new([(r"\app", "/usr/src/app")], false);
        assert_eq!(rooted.to_remote(r"C:\app\x.py"), None);
        assert_eq!(rooted.to_remote(r"\\app\x\y.py"), None);
        assert_eq!(
            rooted.to_remote("/APP/x.py").as_deref(),
            Some("/usr/src/app/x.py")
        );
        let mut whole_drive = PathMapper::new([(r"C:\", "/usr/src/app")], false);
        assert_eq!(
            whole_drive.to_remote(r"c:\x\y.py").as_deref(),
            Some("/usr/src/app/x/y.py")
        );
        assert_eq!(
            whole_drive.to_local("/usr/src/app/z.py").as_deref(),
            Some(r"c:\z.py")
        );
    }

    fn component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,8}".prop_filter("not dots", |s| s != "." && s != "..")
    }

    proptest! {
        #[test]
        fn posix_round_trip(rest in proptest::collection::vec(component(), 0..6)) {
            let mut m = PathMapper::new([("/home/me/app", "/usr/src/app")], false);
            let local = std::iter::once("/home/me/app".to_owned()).chain(rest.iter().cloned()).collect::<Vec<_>>().join("/");
            let remote = m.to_remote(&local).expect("maps");
            prop_assert!(remote.starts_with("/usr/src/app"));
            prop_assert_eq!(m.to_local(&remote), Some(local));
        }

        #[test]
        fn windows_round_trip_in_the_clients_spelling(
            drive in "[a-zA-Z]", rest in proptest::collection::vec(component(), 0..6), upper in any::<bool>()
        ) {
            let configured = format!("{}:\\Work\\App\\", drive.to_ascii_lowercase());
            let mut m = PathMapper::new([(configured.as_str(), "/usr/src/app")], false);
            let spelled = if upper { format!("{}:\\WORK\\app", drive.to_ascii_uppercase()) } else { format!("{drive}:\\work\\APP") };
            let local = std::iter::once(spelled).chain(rest.iter().cloned()).collect::<Vec<_>>().join("\\");
            let remote = m.to_remote(&local).expect("maps");
            prop_assert_eq!(m.to_local(&remote), Some(local));
        }

        #[test]
        fn remote_round_trip(rest in proptest::collection::vec(component(), 0..6)) {
            let mut m = PathMapper::new([(PENNY, "/usr/src/app")], false);
            let remote = std::iter::once("/usr/src/app".to_owned()).chain(rest.iter().cloned()).collect::<Vec<_>>().join("/");
            let local = m.to_local(&remote).expect("maps");
            prop_assert_eq!(m.to_remote(&local), Some(remote));
        }

        #[test]
        fn text_mapping_agrees_with_the_quadratic_reference(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "/usr/src/app", "/usr/src/app/lib", "/usr/src/app2", "/", "..", ".", "x.py",
                "lib", " ", "\"", "=", ",", "(", ":", "\n", "é",
            ]), 0..40),
            slash_root in any::<bool>(),
        ) {
            let mut pairs = vec![("/home/me/app", "/usr/src/app"), ("/home/me/lib", "/usr/src/app/lib")];
            if slash_root {
                pairs.push(("/home/me/root", "/"));
            }
            let m = PathMapper::new(pairs, false);
            let text = pieces.concat();
            prop_assert_eq!(m.text_to_local(&text), text_to_local_reference(&m, &text));
        }

        #[test]
        fn mapped_paths_never_climb_out(rest in proptest::collection::vec(
            proptest::sample::select(vec!["..", ".", "a", "app", "me", "x.py"]), 0..8)
        ) {
            let mut m = PathMapper::new([("/home/me/app", "/usr/src/app")], false);
            let local = format!("/home/me/app/{}", rest.join("/"));
            if let Some(remote) = m.to_remote(&local) {
                prop_assert!(remote == "/usr/src/app" || remote.starts_with("/usr/src/app/"));
                prop_assert!(!remote.split('/').any(|c| c == "." || c == ".."));
            }
            let remote = format!("/usr/src/app/{}", rest.join("/"));
            if let Some(local) = m.to_local(&remote) {
                prop_assert!(local == "/home/me/app" || local.starts_with("/home/me/app/"));
                prop_assert!(!local.split('/').any(|c| c == "." || c == ".."));
            }
        }

        #[test]
        fn text_mapping_never_panics(text in "\\PC{0,200}") {
            let m = PathMapper::new([(PENNY, "/usr/src/app")], false);
            let _ = m.text_to_local(&text);
            let _ = m.text_to_local(&format!("{text}/usr/src/app{text}"));
        }
    }
}
