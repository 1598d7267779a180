//! The pages' words, from the message files in `messages/` (one TOML file per
//! language, sections flattened to `section.key`): English and French. The language
//! is `?lang=` (then remembered in a cookie), else the first supported one in
//! `Accept-Language`, else English. Templates hold no text of their own.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::HeaderValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    /// A supported language from a tag (`fr`, `fr-CA`, `EN`).
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|lang| lang.tag() == primary)
    }

    /// The supported language the browser prefers most (by `q` weight, then order).
    pub fn from_accept_language(header: Option<&HeaderValue>) -> Self {
        let Some(text) = header.and_then(|v| v.to_str().ok()) else { return Self::En };
        let mut choices: Vec<(f32, usize, Lang)> = text
            .split(',')
            .enumerate()
            .filter_map(|(position, item)| {
                let mut parts = item.split(';');
                let lang = Self::from_tag(parts.next()?)?;
                let weight = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (weight > 0.0).then_some((weight, position, lang))
            })
            .collect();
        choices.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        choices.first().map_or(Self::En, |choice| choice.2)
    }

    /// This language's messages.
    pub fn text(self) -> Text {
        Text { messages: messages(self) }
    }
}

/// A message file, flattened: `[login] title = "..."` is `login.title`.
fn parse(source: &str) -> HashMap<String, String> {
    let table: toml::Table = match toml::from_str(source) {
        Ok(table) => table,
        Err(error) => {
            tracing::error!(%error, "a message file does not parse");
            return HashMap::new();
        }
    };
    let mut flat = HashMap::new();
    for (section, values) in table {
        match values {
            toml::Value::Table(values) => {
                for (key, value) in values {
                    if let toml::Value::String(text) = value {
                        flat.insert(format!("{section}.{key}"), text);
                    }
                }
            }
            toml::Value::String(text) => {
                flat.insert(section, text);
            }
            _ => {}
        }
    }
    flat
}

static ENGLISH: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../../messages/en.toml")));
static FRENCH: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| parse(include_str!("../../messages/fr.toml")));

fn messages(lang: Lang) -> &'static HashMap<String, String> {
    match lang {
        Lang::En => &ENGLISH,
        Lang::Fr => &FRENCH,
    }
}

/// The messages of one language, as templates use them.
#[derive(Clone, Copy)]
pub struct Text {
    messages: &'static HashMap<String, String>,
}

impl Text {
    /// The message `key`, in English when this language lacks it, else the key itself
    /// (the tests make sure neither happens).
    pub fn get<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.messages.get(key).or_else(|| ENGLISH.get(key)).map_or(key, String::as_str)
    }

    /// The message `key` with `{name}` replaced by `value`.
    pub fn with(&self, key: &str, name: &str, value: &dyn std::fmt::Display) -> String {
        self.get(key).replace(&format!("{{{name}}}"), &value.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_browser_preference_decides() {
        let pick = |text: &'static str| Lang::from_accept_language(Some(&HeaderValue::from_static(text)));
        assert_eq!(Lang::from_accept_language(None), Lang::En);
        assert_eq!(pick("fr-FR,fr;q=0.9,en;q=0.8"), Lang::Fr);
        assert_eq!(pick("de-DE,fr;q=0.5,en;q=0.7"), Lang::En);
        assert_eq!(pick("de, fr-CA;q=0.4"), Lang::Fr);
        assert_eq!(pick("fr;q=0, en;q=0.1"), Lang::En);
        assert_eq!(pick("ja"), Lang::En);
        assert_eq!(Lang::from_tag("FR"), Some(Lang::Fr));
        assert_eq!(Lang::from_tag("xx"), None);
    }

    #[test]
    fn every_language_has_every_message() {
        let english: BTreeSet<&String> = ENGLISH.keys().collect();
        assert!(english.len() > 50, "the English file parsed");
        for lang in Lang::ALL {
            let keys: BTreeSet<&String> = messages(lang).keys().collect();
            assert_eq!(keys, english, "{lang:?} has the same messages as English");
            assert!(messages(lang).values().all(|text| !text.trim().is_empty()), "{lang:?}");
        }
    }

    #[test]
    fn every_message_a_template_or_handler_asks_for_exists() {
        let sections: BTreeSet<&str> =
            ENGLISH.keys().filter_map(|k| k.split_once('.')).map(|(s, _)| s).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut asked = 0;
        for dir in ["templates/pages", "src/pages"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                // Every quoted `section.key` of a known section is a message asked for.
                for quoted in source.split('"') {
                    let Some((section, key)) = quoted.split_once('.') else { continue };
                    let is_key = sections.contains(section)
                        && !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                    if is_key {
                        asked += 1;
                        assert!(ENGLISH.contains_key(quoted), "message {quoted:?} is missing");
                    }
                }
            }
        }
        assert!(asked > 100, "the sources were read ({asked} messages)");
    }

    #[test]
    fn templates_hold_no_words_of_their_own() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/pages");
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            // What is left between tags once expressions and blocks are taken out.
            let mut outside = String::new();
            let mut depth = 0;
            let mut chars = source.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('{', Some('{' | '%' | '#')) => depth += 1,
                    ('}' | '%' | '#', Some('}')) if depth > 0 => {
                        chars.next();
                        depth -= 1;
                    }
                    ('<', _) if depth == 0 => {
                        for c in chars.by_ref() {
                            if c == '>' {
                                break;
                            }
                        }
                    }
                    _ if depth == 0 => outside.push(c),
                    _ => {}
                }
            }
            let words: Vec<&str> =
                outside.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)).collect();
            assert!(words.is_empty(), "{} has text outside the message files: {words:?}", path.display());
        }
    }
}
