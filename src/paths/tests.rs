//! The path mapper's tests.

use super::text::{ends_path, may_precede_path};
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
        out.contains(r#"File "c:\Users\Penny\Documents\Software\home-assistant\main.py", line 3"#),
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
