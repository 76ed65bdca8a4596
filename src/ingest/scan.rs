//! Find one top-level string member in the first bytes of a JSON object,
//! without the rest: a PagerDuty sender is identified by the `routing_key`
//! inside its body, and a stranger's body should not be read in full to
//! learn that it carries no valid key.

/// What the bytes seen so far say about the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScan {
    /// The member's string value.
    Found(String),
    /// The bytes end before the member or the object does.
    Incomplete,
    /// The object ended without it.
    Missing,
    /// Not a JSON object, or the member is not a string.
    Invalid,
}

/// Scan `prefix` (the start of a body) for the top-level member `key`.
pub fn top_level_string(prefix: &[u8], key: &str) -> KeyScan {
    let mut s = Scanner { b: prefix, i: 0 };
    match s.object_member(key) {
        Ok(found) => found,
        Err(Stop::Incomplete) => KeyScan::Incomplete,
        Err(Stop::Invalid) => KeyScan::Invalid,
    }
}

enum Stop {
    Incomplete,
    Invalid,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&mut self) -> Result<u8, Stop> {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        self.b.get(self.i).copied().ok_or(Stop::Incomplete)
    }

    fn expect(&mut self, c: u8) -> Result<(), Stop> {
        if self.peek()? != c {
            return Err(Stop::Invalid);
        }
        self.i += 1;
        Ok(())
    }

    fn object_member(&mut self, key: &str) -> Result<KeyScan, Stop> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            return Ok(KeyScan::Missing);
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            if name == key {
                if self.peek()? != b'"' {
                    return Err(Stop::Invalid);
                }
                return Ok(KeyScan::Found(self.string()?));
            }
            self.skip_value()?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => return Ok(KeyScan::Missing),
                _ => return Err(Stop::Invalid),
            }
        }
    }

    /// The end (exclusive) of the string token starting at `self.i`.
    fn string_end(&mut self) -> Result<usize, Stop> {
        if self.peek()? != b'"' {
            return Err(Stop::Invalid);
        }
        let mut j = self.i + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => j += 2,
                b'"' => return Ok(j + 1),
                _ => j += 1,
            }
        }
        Err(Stop::Incomplete)
    }

    fn string(&mut self) -> Result<String, Stop> {
        let end = self.string_end()?;
        let token = &self.b[self.i..end];
        self.i = end;
        serde_json::from_slice(token).map_err(|_| Stop::Invalid)
    }

    fn skip_value(&mut self) -> Result<(), Stop> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => self.i = self.string_end()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.i += 1;
                }
                b',' | b'}' | b']' if depth == 0 => return Ok(()),
                _ => self.i += 1,
            }
            if depth == 0 && matches!(self.peek(), Ok(b',' | b'}')) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_member_wherever_it_is_at_the_top_level() {
        let cases: &[(&str, KeyScan)] = &[
            (r#"{"routing_key":"abc","event_action":"trigger"}"#, KeyScan::Found("abc".into())),
            (r#" { "event_action" : "trigger", "routing_key" : "k\u0041" } "#, KeyScan::Found("kA".into())),
            (
                r#"{"payload":{"routing_key":"nested","x":[1,{"a":"}"}]},"n":-1.5e3,"t":true,"routing_key":"top"}"#,
                KeyScan::Found("top".into()),
            ),
            (r#"{"payload":{"summary":"x"}}"#, KeyScan::Missing),
            ("{}", KeyScan::Missing),
            (r#"{"payload":{"summary":"a long body cut he"#, KeyScan::Incomplete),
            (r#"{"routing_key":"ab"#, KeyScan::Incomplete),
            ("", KeyScan::Incomplete),
            (r#"{"routing_key":42}"#, KeyScan::Invalid),
            (r#"["routing_key"]"#, KeyScan::Invalid),
            (r#"{"a":"\"","routing_key":"q"}"#, KeyScan::Found("q".into())),
        ];
        for (body, want) in cases {
            assert_eq!(&top_level_string(body.as_bytes(), "routing_key"), want, "{body}");
        }
    }

    #[test]
    fn any_prefix_of_a_valid_body_is_incomplete_or_the_answer() {
        let body = r#"{"payload":{"summary":"disk full","custom_details":{"a":[1,2,{"b":"c"}]}},"routing_key":"key-1234567890abcdef","event_action":"trigger"}"#;
        for cut in 0..body.len() {
            let got = top_level_string(&body.as_bytes()[..cut], "routing_key");
            assert!(
                matches!(&got, KeyScan::Incomplete) || got == KeyScan::Found("key-1234567890abcdef".into()),
                "cut at {cut}: {got:?}"
            );
        }
    }
}
