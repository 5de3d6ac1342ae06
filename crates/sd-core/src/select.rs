//! Picking one thing a user named: a library (and later a device) by name or id.
//!
//! The rule, the same for every lookup by name: an exact name or an exact id wins; failing
//! that, a name that matches ignoring case or an id prefix is taken only when exactly one thing
//! matches. Anything else is an error — `not_found`, or `ambiguous` listing the candidates — so a
//! loose match can never pick the wrong library for a destructive command.

use crate::{Error, Result};

/// One thing that can be named: its display name and its id as text.
pub trait Named {
    fn name(&self) -> String;
    fn id_text(&self) -> String;
}

/// The one item `selector` names, by the rule above. `what` is the kind of thing, for messages
/// ("library"); `list_hint` the command that lists them.
pub fn pick<'a, T: Named>(
    items: &'a [T],
    selector: &str,
    what: &str,
    list_hint: &str,
) -> Result<&'a T> {
    if let Some(exact) = unique(
        items
            .iter()
            .filter(|t| t.name() == selector || t.id_text() == selector),
    ) {
        return exact.ok_or_else(|| {
            ambiguous(
                items.iter().filter(|t| t.name() == selector),
                selector,
                what,
            )
        });
    }
    let lower = selector.to_lowercase();
    let loose: Vec<&T> = items
        .iter()
        .filter(|t| {
            t.name().to_lowercase() == lower
                || (!selector.is_empty() && t.id_text().starts_with(&lower))
        })
        .collect();
    match loose.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound(format!(
            "no {what} named {selector:?}; see `{list_hint}`"
        ))),
        _ => Err(ambiguous(loose.into_iter(), selector, what)),
    }
}

/// `None` when there is no item, `Some(None)` when there are several, `Some(Some(x))` for one.
fn unique<'a, T>(mut it: impl Iterator<Item = &'a T>) -> Option<Option<&'a T>> {
    let first = it.next()?;
    Some(if it.next().is_some() {
        None
    } else {
        Some(first)
    })
}

fn ambiguous<'a, T: Named + 'a>(
    candidates: impl Iterator<Item = &'a T>,
    selector: &str,
    what: &str,
) -> Error {
    let list: Vec<String> = candidates
        .map(|t| format!("{:?} ({})", t.name(), t.id_text()))
        .collect();
    Error::Ambiguous(format!(
        "{selector:?} could name more than one {what}: {}; use the exact name or the id",
        list.join(", ")
    ))
}

/// Whether `name` would clash with an existing name (the same ignoring case). Creating or
/// renaming to such a name is refused so that names stay distinguishable.
pub fn clashes<'a>(mut existing: impl Iterator<Item = &'a str>, name: &str) -> bool {
    let lower = name.to_lowercase();
    existing.any(|n| n.to_lowercase() == lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct L(&'static str, &'static str);
    impl Named for L {
        fn name(&self) -> String {
            self.0.into()
        }
        fn id_text(&self) -> String {
            self.1.into()
        }
    }

    #[test]
    fn exact_wins_then_unique_loose_else_ambiguous() {
        let libs = [L("Photos", "aa11"), L("photos", "bb22"), L("Work", "ab33")];
        assert_eq!(pick(&libs, "photos", "library", "x").unwrap().1, "bb22");
        assert_eq!(pick(&libs, "Photos", "library", "x").unwrap().1, "aa11");
        assert_eq!(pick(&libs, "work", "library", "x").unwrap().1, "ab33");
        assert_eq!(pick(&libs, "bb", "library", "x").unwrap().1, "bb22");
        let e = pick(&libs, "PHOTOS", "library", "x").unwrap_err();
        assert_eq!(e.code(), "ambiguous");
        assert!(e.to_string().contains("aa11") && e.to_string().contains("bb22"));
        assert_eq!(
            pick(&libs, "a", "library", "x").unwrap_err().code(),
            "ambiguous"
        );
        assert_eq!(
            pick(&libs, "nosuch", "library", "x").unwrap_err().code(),
            "not_found"
        );
        assert_eq!(
            pick(&libs, "", "library", "x").unwrap_err().code(),
            "not_found"
        );
    }

    #[test]
    fn clashes_ignore_case() {
        assert!(clashes(["Photos", "Work"].into_iter(), "photos"));
        assert!(!clashes(["Photos", "Work"].into_iter(), "Photo"));
    }
}
