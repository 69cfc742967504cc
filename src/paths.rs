//! Path mapping between the IDE's checkout ("local") and the container ("remote").
//!
//! Unlike pydevd's plain string prefixes (first match wins, `/usr/src/app` also matching
//! `/usr/src/app2`), roots here match whole path components and the longest root wins.
//! A local root is Windows-style when it has a drive letter or a backslash, or when the
//! client said `clientOS: windows`; then it matches case-insensitively with either
//! separator. Paths handed back to the client use the client's own spelling of the root
//! (as last seen in one of its requests: VS Code may send `c:` where the config says `C:`)
//! and its separator.

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

    fn separator(self) -> char {
        match self {
            Style::Posix => '/',
            Style::Windows => '\\',
        }
    }

    fn is_separator(self, c: char) -> bool {
        c == '/' || (self == Style::Windows && c == '\\')
    }

    fn eq(self, a: &str, b: &str) -> bool {
        match self {
            Style::Posix => a == b,
            Style::Windows => a.eq_ignore_ascii_case(b),
        }
    }
}

/// Components of `path` with the byte offset where each ends; empty components are
/// skipped. The flag says whether the path starts with a separator.
fn components(path: &str, style: Style) -> (bool, Vec<(&str, usize)>) {
    let absolute = path.chars().next().is_some_and(|c| style.is_separator(c));
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in path.char_indices() {
        if style.is_separator(c) {
            if i > start {
                out.push((&path[start..i], i));
            }
            start = i + c.len_utf8();
        }
    }
    if path.len() > start {
        out.push((&path[start..], path.len()));
    }
    (absolute, out)
}

/// One root pair.
#[derive(Clone, Debug)]
struct Root {
    /// The local root as configured, without trailing separators.
    local: String,
    /// The container root, without trailing `/` (but `/` itself stays).
    remote: String,
    /// How the local side is written.
    style: Style,
    /// Number of components of each root, for longest-first ordering.
    local_depth: usize,
    remote_depth: usize,
    /// The client's own spelling of `local`, learned from its requests.
    spelling: Option<String>,
}

/// Maps paths for one session.
#[derive(Clone, Debug, Default)]
pub struct PathMapper {
    /// The roots; searched longest first on the side being matched.
    roots: Vec<Root>,
}

impl PathMapper {
    /// Builds a mapper from `(local_root, remote_root)` pairs.
    pub fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        client_windows: bool,
    ) -> Self {
        let roots = pairs
            .into_iter()
            .map(|(local, remote)| {
                let style = Style::of(local, client_windows);
                let local = trim_separators(local, style);
                let remote = trim_separators(remote, Style::Posix);
                Root {
                    local_depth: components(&local, style).1.len(),
                    remote_depth: components(&remote, Style::Posix).1.len(),
                    local,
                    remote,
                    style,
                    spelling: None,
                }
            })
            .collect();
        PathMapper { roots }
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
        let mut best: Option<(usize, usize, usize)> = None; // (depth, root index, prefix end)
        for (i, root) in self.roots.iter().enumerate() {
            if best.is_some_and(|(depth, _, _)| depth >= root.local_depth) {
                continue;
            }
            if let Some(end) = prefix_end(&root.local, path, root.style) {
                best = Some((root.local_depth, i, end));
            }
        }
        let (_, i, end) = best?;
        let root = &mut self.roots[i];
        let rest = components(&path[end..], root.style).1;
        let mut out = root.remote.clone();
        for (c, _) in &rest {
            join(&mut out, '/', c);
        }
        let spelled = &path[..end];
        if root.spelling.as_deref() != Some(spelled) {
            root.spelling = Some(spelled.to_owned());
        }
        Some(out)
    }

    /// Maps a container path to the IDE, in the client's style.
    pub fn to_local(&self, path: &str) -> Option<String> {
        let mut best: Option<(&Root, usize)> = None;
        for root in &self.roots {
            if best.is_some_and(|(b, _)| b.remote_depth >= root.remote_depth) {
                continue;
            }
            if let Some(end) = prefix_end(&root.remote, path, Style::Posix) {
                best = Some((root, end));
            }
        }
        let (root, end) = best?;
        let rest = components(&path[end..], Style::Posix).1;
        let base = root.spelling.as_deref().unwrap_or(&root.local);
        let sep = root.style.separator();
        let mut out = base.to_owned();
        for (c, _) in &rest {
            join(&mut out, sep, c);
        }
        Some(out)
    }

    /// Replaces container paths inside free text (traceback lines such as
    /// `File "/usr/src/app/x.py", line 3`) with IDE paths. `None` if nothing changed.
    pub fn text_to_local(&self, text: &str) -> Option<String> {
        let mut spans: Vec<(usize, usize, String)> = Vec::new();
        for root in &self.roots {
            if root.remote == "/" {
                continue; // `/` as a root would match every path-like word
            }
            for (start, _) in text.match_indices(root.remote.as_str()) {
                let boundary_ok = text[..start]
                    .chars()
                    .next_back()
                    .is_none_or(|c| c.is_whitespace() || "\"'(<[=,:".contains(c));
                if !boundary_ok || spans.iter().any(|(s, e, _)| start >= *s && start < *e) {
                    continue;
                }
                let len = text[start..]
                    .find(|c: char| c.is_whitespace() || "\"'<>),:;]`".contains(c))
                    .unwrap_or(text.len() - start);
                let end = start + len;
                if let Some(local) = self.to_local(&text[start..end]) {
                    spans.push((start, end, local));
                }
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_by_key(|(s, _, _)| *s);
        let mut out = String::with_capacity(text.len() + spans.len() * 16);
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
}

/// If `root` is a component prefix of `path`, the byte offset in `path` where it ends.
fn prefix_end(root: &str, path: &str, style: Style) -> Option<usize> {
    let (root_abs, root_parts) = components(root, style);
    let (path_abs, path_parts) = components(path, style);
    if root_abs != path_abs || root_parts.len() > path_parts.len() {
        return None;
    }
    let mut end = if path_abs { 1 } else { 0 };
    for ((r, _), (p, p_end)) in root_parts.iter().zip(&path_parts) {
        if !style.eq(r, p) {
            return None;
        }
        end = *p_end;
    }
    Some(end.min(path.len()))
}

/// Drops trailing separators, keeping a lone root separator (`/`).
fn trim_separators(s: &str, style: Style) -> String {
    let trimmed = s.trim_end_matches(|c| style.is_separator(c));
    if trimmed.is_empty() {
        s.chars().take(1).collect()
    } else {
        trimmed.to_owned()
    }
}

/// Appends `component` to `path` with `sep`, without doubling a trailing separator.
fn join(path: &mut String, sep: char, component: &str) {
    if !path.ends_with(sep) {
        path.push(sep);
    }
    path.push_str(component);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        fn text_mapping_never_panics(text in "\\PC{0,200}") {
            let m = PathMapper::new([(PENNY, "/usr/src/app")], false);
            let _ = m.text_to_local(&text);
            let _ = m.text_to_local(&format!("{text}/usr/src/app{text}"));
        }
    }
}
