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
//!
//! This file holds the mapper; `syntax.rs` the parsing of paths (styles, anchors,
//! normalised components, root prefixes), `text.rs` the mapping of paths inside free text.

use memchr::memmem::Finder;

mod syntax;
mod text;

pub use syntax::Style;
use syntax::{Anchor, Parsed, Part, Prefix, longest, push_parts, render};
use text::needles;

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

    /// The local roots, as configured.
    pub fn local_roots(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|r| r.local.as_str())
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

#[cfg(test)]
mod tests;
