//! Matchmaking preferences a user may give with a register: interests,
//! language and strictness, checked and normalised in one place so the
//! native socket and the legacy HTTP register accept exactly the same.
//!
//! The pairing script compares tags and languages byte for byte, so they
//! are stored only in their normal form (trimmed, lowercased, NFC).

use serde::{Deserialize, Serialize};

/// Most interest tags one register may carry.
pub const MAX_INTERESTS: usize = 10;

/// Longest interest tag, in characters (once normalised).
pub const MAX_INTEREST_CHARS: usize = 32;

/// Preferences as a client sends them (JSON fields of a native `register`
/// or of the legacy `POST /registerForMatching` body), before checking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPreferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interests: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Checked, normalised preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Distinct tags, normalised, in the order first given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    /// A lowercase ISO 639 primary language subtag (`en`, `pt`, `yue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Only someone sharing an interest (and the language) will do, however
    /// long it takes: no fallback to anyone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

/// Why preferences were refused: the field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PreferenceError {
    /// The JSON field: `interests`, `language` or `strict`.
    pub field: &'static str,
    pub reason: String,
}

impl Preferences {
    /// Nothing asked for: the user is pairable with anyone at once.
    pub fn is_empty(&self) -> bool {
        self.interests.is_empty() && self.language.is_none() && !self.strict
    }

    /// Check and normalise what a client sent.
    pub fn parse(raw: RawPreferences) -> Result<Preferences, PreferenceError> {
        let interests = match raw.interests {
            None => Vec::new(),
            Some(tags) => normalize_interests(&tags)?,
        };
        let language = match raw.language {
            None => None,
            Some(l) if l.trim().is_empty() => None,
            Some(l) => Some(normalize_language(&l)?),
        };
        Ok(Preferences {
            interests,
            language,
            strict: raw.strict.unwrap_or(false),
        })
    }
}

/// Normalise interest tags: each trimmed, lowercased and in NFC, 1 to
/// [`MAX_INTEREST_CHARS`] characters with no control or invisible
/// characters; duplicates dropped; at most [`MAX_INTERESTS`] remain.
pub fn normalize_interests(tags: &[String]) -> Result<Vec<String>, PreferenceError> {
    let err = |reason: String| PreferenceError {
        field: "interests",
        reason,
    };
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let t = normalize_interest(tag);
        let chars = t.chars().count();
        if !(1..=MAX_INTEREST_CHARS).contains(&chars) {
            return Err(err(format!(
                "each tag must be 1 to {MAX_INTEREST_CHARS} characters ({tag:?} is {chars} once trimmed)"
            )));
        }
        if t.chars().any(|c| c.is_control()) || !crate::limits::valid_name(&t) {
            return Err(err(format!(
                "{tag:?} holds control or invisible characters"
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_INTERESTS {
        return Err(err(format!(
            "at most {MAX_INTERESTS} distinct tags ({} given)",
            out.len()
        )));
    }
    Ok(out)
}

/// One tag in its normal form (trimmed, lowercased, NFC).
pub fn normalize_interest(tag: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    tag.trim().to_lowercase().nfc().collect()
}

/// A BCP 47 primary language subtag: 2 or 3 ASCII letters, lowercased.
pub fn normalize_language(lang: &str) -> Result<String, PreferenceError> {
    let l = lang.trim();
    if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(l.to_ascii_lowercase())
    } else {
        Err(PreferenceError {
            field: "language",
            reason: format!(
                "must be a primary language subtag of 2 or 3 letters such as \"en\" ({lang:?} given)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_are_trimmed_lowercased_nfc_and_deduplicated() {
        let got = normalize_interests(&tags(&[" Music ", "music", "Cafe\u{301}", "café"])).unwrap();
        assert_eq!(got, vec!["music".to_string(), "caf\u{e9}".to_string()]);
    }

    #[test]
    fn bad_tags_are_refused_naming_the_field() {
        for bad in [
            tags(&[""]),
            tags(&["   "]),
            tags(&[&"x".repeat(33)]),
            tags(&["a\u{200B}b"]),
            tags(&["a\nb"]),
        ] {
            assert_eq!(normalize_interests(&bad).unwrap_err().field, "interests");
        }
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert_eq!(normalize_interests(&eleven).unwrap_err().field, "interests");
        // Eleven given, ten once duplicates are dropped: fine.
        let mut ten = (0..10).map(|i| format!("t{i}")).collect::<Vec<_>>();
        ten.push("T0".into());
        assert_eq!(normalize_interests(&ten).unwrap().len(), 10);
        assert!(normalize_interests(&tags(&[&"é".repeat(32)])).is_ok());
    }

    #[test]
    fn languages_are_primary_subtags() {
        assert_eq!(normalize_language("EN").unwrap(), "en");
        assert_eq!(normalize_language("yue").unwrap(), "yue");
        for bad in ["e", "en-US", "engl", "e1", ""] {
            assert_eq!(normalize_language(bad).unwrap_err().field, "language");
        }
    }

    #[test]
    fn parse_defaults_to_nothing_asked() {
        let p = Preferences::parse(RawPreferences::default()).unwrap();
        assert!(p.is_empty());
        let p = Preferences::parse(RawPreferences {
            interests: Some(tags(&["Chess"])),
            language: Some("De".into()),
            strict: Some(true),
        })
        .unwrap();
        assert_eq!(p.interests, vec!["chess".to_string()]);
        assert_eq!(p.language.as_deref(), Some("de"));
        assert!(p.strict);
    }
}
