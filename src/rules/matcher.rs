//! Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`. Values may be double-quoted (with `\"`,
//! `\\` and `\n` escapes) or bare; regexes are anchored at both ends, as in
//! Prometheus. A missing label matches as the empty string, so
//! `team=""` selects alerts without a `team` label.
use std::fmt;

use regex::Regex;

use crate::model::LabelSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    pattern: Option<Pattern>,
}

/// A regex value, with the shapes rule files use most answered without the
/// regex engine: `a|b|c` and `prefix.*`. Alertmanager users write these by
/// the hundred; each check is then a string comparison.
#[derive(Debug, Clone)]
enum Pattern {
    Literals(Vec<String>),
    Prefix(String),
    Regex(Regex),
}

impl Pattern {
    fn compile(value: &str) -> Result<Pattern, String> {
        // Compile anyway, so an invalid value is refused whatever its shape.
        let regex = Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("invalid regex: {e}"))?;
        let plain = |s: &str| !s.contains(|c: char| "\\.+*?()|[]{}^$".contains(c));
        if let Some(prefix) = value.strip_suffix(".*")
            && plain(prefix)
        {
            return Ok(Pattern::Prefix(prefix.to_owned()));
        }
        if value.split('|').all(plain) {
            return Ok(Pattern::Literals(value.split('|').map(str::to_owned).collect()));
        }
        Ok(Pattern::Regex(regex))
    }

    fn is_match(&self, v: &str) -> bool {
        match self {
            Pattern::Literals(options) => options.iter().any(|o| o == v),
            Pattern::Prefix(p) => v.starts_with(p.as_str()) && !v[p.len()..].contains('\n'),
            Pattern::Regex(r) => r.is_match(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad matcher {input:?}: {reason}")]
pub struct MatcherError {
    pub input: String,
    pub reason: String,
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("label name is empty".into());
        }
        let pattern = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Pattern::compile(value)?),
            _ => None,
        };
        Ok(Matcher { name: name.to_owned(), op, value: value.to_owned(), pattern })
    }

    /// Same label, operator and value (the compiled pattern follows from them).
    pub fn same_as(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.pattern.as_ref().is_some_and(|p| p.is_match(v)),
            MatchOp::NotRegex => !self.pattern.as_ref().is_some_and(|p| p.is_match(v)),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl std::str::FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Parser { s, pos: 0 };
        let m = p.matcher().and_then(|m| {
            p.skip_ws();
            if p.pos == s.len() { Ok(m) } else { Err(format!("unexpected {:?} after the matcher", &s[p.pos..])) }
        });
        m.map_err(|reason| MatcherError { input: s.to_owned(), reason })
    }
}

/// Parse a list such as `{alertname="X", severity=~"crit|warn"}` (braces optional).
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherError> {
    let err = |reason: String| MatcherError { input: s.to_owned(), reason };
    let mut p = Parser { s, pos: 0 };
    p.skip_ws();
    let braced = p.eat('{');
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.at_end() || (braced && p.peek() == Some('}')) {
            break;
        }
        out.push(p.matcher().map_err(err)?);
        p.skip_ws();
        if !p.eat(',') {
            break;
        }
    }
    p.skip_ws();
    if braced && !p.eat('}') {
        return Err(err("missing closing '}'".into()));
    }
    p.skip_ws();
    if !p.at_end() {
        return Err(err(format!("unexpected {:?}", &s[p.pos..])));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn matcher(&mut self) -> Result<Matcher, String> {
        self.skip_ws();
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':') {
                self.pos += self.peek().map_or(1, char::len_utf8);
            }
            self.s[start..self.pos].to_owned()
        };
        if name.is_empty() {
            return Err("expected a label name".into());
        }
        self.skip_ws();
        let op = if self.s[self.pos..].starts_with("=~") {
            MatchOp::Regex
        } else if self.s[self.pos..].starts_with("!~") {
            MatchOp::NotRegex
        } else if self.s[self.pos..].starts_with("!=") {
            MatchOp::NotEqual
        } else if self.s[self.pos..].starts_with('=') {
            MatchOp::Equal
        } else {
            return Err(format!("expected =, !=, =~ or !~ after {name:?}"));
        };
        self.pos += op.as_str().len();
        self.skip_ws();
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            // A bare value runs to the next comma or closing brace.
            let start = self.pos;
            while self.peek().is_some_and(|c| c != ',' && c != '}') {
                self.pos += self.peek().map_or(1, char::len_utf8);
            }
            let v = self.s[start..self.pos].trim_end();
            if v.contains('"') {
                return Err("unbalanced quote in value".into());
            }
            v.to_owned()
        };
        Matcher::new(&name, op, &value)
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.eat('"');
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated quoted string".into());
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated escape".into());
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        '"' | '\\' => out.push(e),
                        // Regexes keep their own escapes: `\.` stays `\.`.
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn table_of_matches() {
        let l = labels(&[("alertname", "KubePodCrashLooping"), ("namespace", "prod-eu"), ("env", "dev")]);
        let cases = [
            (r#"alertname="KubePodCrashLooping""#, true),
            (r#"alertname = "KubePodCrashLooping""#, true),
            ("alertname=KubePodCrashLooping", true),
            (r#"namespace=~"prod-.*""#, true),
            (r#"namespace=~"prod""#, false), // anchored
            (r#"namespace=~"rod-eu""#, false),
            (r#"namespace!~"dev|test""#, true),
            (r#"env!="dev""#, false),
            (r#"team="""#, true), // absent label equals ""
            (r#"team!="""#, false),
            (r#"team=~".*""#, true),
            (r#"team=~".+""#, false),
            (r#""env"="dev""#, true),
        ];
        for (m, want) in cases {
            let matcher: Matcher = m.parse().unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(matcher.matches(&l), want, "{m}");
        }
    }

    #[test]
    fn quoting_and_escapes() {
        let m: Matcher = r#"msg="say \"hi\"\\n""#.parse().unwrap();
        assert_eq!(m.value, r#"say "hi"\n"#);
        let m: Matcher = r#"msg="line\nbreak""#.parse().unwrap();
        assert_eq!(m.value, "line\nbreak");
        let m: Matcher = r#"host=~"db\.example\.org""#.parse().unwrap();
        assert!(m.matches(&labels(&[("host", "db.example.org")])));
        assert!(!m.matches(&labels(&[("host", "dbxexample.org")])));
        let m: Matcher = r#"x="a,b}""#.parse().unwrap();
        assert_eq!(m.value, "a,b}");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (s, part) in [
            ("", "label name"),
            ("=x", "label name"),
            ("a", "expected ="),
            ("a=\"open", "unterminated"),
            ("a=~\"(\"", "invalid regex"),
            ("a=\"b\" c", "unexpected"),
            ("a==b", "unbalanced"),
        ] {
            let e = s.parse::<Matcher>().err();
            let msg = e.map(|e| e.to_string()).unwrap_or_default();
            if s == "a==b" {
                // `a==b` is `a` equal to `=b`, as in Alertmanager's bare values.
                assert!(msg.is_empty(), "{s}: {msg}");
                continue;
            }
            assert!(msg.contains(part), "{s}: {msg}");
        }
    }

    #[test]
    fn literal_shortcuts_agree_with_the_regex_engine() {
        let values = ["", "a", "ab", "abc", "prod-eu", "prod-", "prod", "x\nprod-", "prod-\nx", "b|c", "c"];
        for pattern in ["a|b|c", "prod-.*", "ab", "", "a|", "prod-eu|prod-us", ".*", "a.c", "p.*d"] {
            let fast = Pattern::compile(pattern).unwrap();
            let slow = Regex::new(&format!("^(?:{pattern})$")).unwrap();
            for v in values {
                assert_eq!(fast.is_match(v), slow.is_match(v), "{pattern:?} on {v:?}");
            }
        }
        assert!(matches!(Pattern::compile("prod-.*").unwrap(), Pattern::Prefix(_)));
        assert!(matches!(Pattern::compile("a|b").unwrap(), Pattern::Literals(_)));
        assert!(matches!(Pattern::compile("a.c").unwrap(), Pattern::Regex(_)));
        assert!(Pattern::compile("a|(").is_err());
    }

    #[test]
    fn non_ascii_whitespace_does_not_panic() {
        let m: Matcher = "\u{a0}a\u{3000}=\u{a0}\"b\"".parse().unwrap();
        assert_eq!((m.name.as_str(), m.value.as_str()), ("a", "b"));
        assert!(parse_matchers("{\u{a0}a=\"b\",\u{3000}}").is_ok());
    }

    #[test]
    fn lists_with_and_without_braces() {
        let ms = parse_matchers(r#"{alertname="A", severity=~"crit.*"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        let ms = parse_matchers(r#"alertname="A",job!=node"#).unwrap();
        assert_eq!(ms[1].op, MatchOp::NotEqual);
        assert_eq!(ms[1].value, "node");
        assert!(parse_matchers("{}").unwrap().is_empty());
        assert!(parse_matchers(r#"{a="b""#).is_err());
    }
}
