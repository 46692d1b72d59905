//! Variable substitution and quote removal for one raw word, as the Dockerfile reference describes.
//!
//! This follows BuildKit's `shell.Lex.ProcessWord` (frontend/dockerfile/shell/lex.go):
//!
//! - `$name` and `${name}`; a name is letters, digits and `_`, or all digits (`$1`), or one special
//!   parameter character (`$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`), looked up like any other name.
//!   A `$` followed by anything else is literal.
//! - `${name:-word}`, `${name-word}`, `${name:+word}`, `${name+word}`, `${name:?message}`,
//!   `${name?message}`; `word` is itself expanded (quotes and nested substitutions allowed).
//! - `${name#pattern}`, `${name##pattern}`, `${name%pattern}`, `${name%%pattern}` (remove the
//!   shortest/longest matching prefix/suffix) and `${name/pattern/replacement}`,
//!   `${name//pattern/replacement}`; patterns know `*` and `?`, the escape character makes the next
//!   character literal.
//! - Single quotes keep everything literal; double quotes allow substitutions and escaping of `"`,
//!   `$` and the escape character (other escapes stay as written); outside quotes the escape
//!   character makes the next character literal (and is dropped at the very end). Quotes are
//!   removed.
//!
//! Unset variables expand to the empty string.

use std::iter::Peekable;
use std::str::Chars;

/// A substitution that cannot be done (`${v:?message}`, bad syntax).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// How deeply `${...}` may nest (a bound on recursion, far beyond any real Dockerfile).
const MAX_DEPTH: usize = 64;

/// Expand `$v`, `${v}`, `${v:-default}`, `${v:+alt}` (and the `-`/`+`/`?` forms without colon) in
/// `word`, removing quotes and escapes (`escape` is the Dockerfile's escape character) the way the
/// builder's shell lexer does: no expansion inside single quotes, escaped `$` is literal.
pub fn expand(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    Lexer {
        chars: word.chars().peekable(),
        escape,
        lookup,
        depth: 0,
    }
    .until(None, false)
}

fn error<T>(message: impl Into<String>) -> Result<T, ExpandError> {
    Err(ExpandError(message.into()))
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    /// Process up to `stop` (consumed) or the end of the word. With `raw_escapes` the escape
    /// characters are kept (for patterns, where they make the next character literal).
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<String, ExpandError> {
        if stop.is_some() {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return error("syntax error: substitutions nested too deeply");
            }
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.chars.next();
                self.depth -= 1;
                return Ok(out);
            }
            match c {
                '$' => out.push_str(&self.dollar()?),
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted(raw_escapes)?),
                _ => {
                    self.chars.next();
                    if c == self.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.chars.next() {
                            Some(next) => out.push(next),
                            None => break,
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
        match stop {
            None => Ok(out),
            Some('}') => error("syntax error: missing '}'"),
            Some(c) => error(format!("syntax error: missing '{c}' in ${{}}")),
        }
    }

    /// `'...'`: everything literal up to the next single quote.
    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return error("unexpected end of statement while looking for matching single-quote"),
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: substitutions happen; the escape character escapes `"`, `$` and itself only.
    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, ExpandError> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return error("unexpected end of statement while looking for matching double-quote"),
                Some('"') => {
                    self.chars.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.chars.next();
                    if c == self.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.chars.next();
                                out.push(next);
                            }
                            // Any other escape stays as written.
                            Some(_) => out.push(c),
                            // Unterminated: reported on the next turn.
                            None => {}
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

    /// A name after `$` (see the module documentation); empty if there is none.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    self.chars.next();
                    name.push(c);
                }
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.chars.next();
                name.push(c);
            }
            _ => {
                while let Some(c) = self.peek().filter(|&c| c.is_alphanumeric() || c == '_') {
                    self.chars.next();
                    name.push(c);
                }
            }
        }
        name
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// A substitution starting at `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.chars.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.get(&name).unwrap_or_default());
        }
        self.chars.next();
        match self.peek() {
            None => return error("syntax error: missing '}'"),
            Some('{' | '}' | ':') => return error("syntax error: bad substitution"),
            Some(_) => {}
        }
        let name = self.name();
        match self.chars.next() {
            None => error("syntax error: missing '}'"),
            Some('}') => Ok(self.get(&name).unwrap_or_default()),
            Some(':') => match self.chars.next() {
                None => error("syntax error: missing '}'"),
                Some(m @ ('-' | '+' | '?')) => self.modifier(&name, m, true),
                Some(m) => error(format!("unsupported modifier (:{m}) in substitution")),
            },
            Some(m @ ('-' | '+' | '?' | '#' | '%')) => self.modifier(&name, m, false),
            Some('/') => self.replace(&name),
            Some(m) => error(format!("unsupported modifier ({m}) in substitution")),
        }
    }

    /// `${name<m>word}` after the modifier `m`; `colon`: `:-`, `:+`, `:?` (an empty value counts
    /// as unset).
    fn modifier(&mut self, name: &str, m: char, colon: bool) -> Result<String, ExpandError> {
        let pattern = m == '#' || m == '%';
        let word = self.until(Some('}'), pattern)?;
        let value = self.get(name);
        let set = value.as_ref().is_some_and(|v| !(colon && v.is_empty()));
        match m {
            '-' if set => Ok(value.unwrap_or_default()),
            '-' => Ok(word),
            '+' if set => Ok(word),
            '+' => Ok(String::new()),
            '?' if set => Ok(value.unwrap_or_default()),
            '?' => {
                let message = match (word.is_empty(), value.is_some()) {
                    (false, _) => word.as_str(),
                    (true, false) => "is not allowed to be unset",
                    (true, true) => "is not allowed to be empty",
                };
                error(format!("{name}: {message}"))
            }
            _ => {
                // `#`/`%`: remove a prefix/suffix; doubled (`##`, `%%`): the longest match.
                let (longest, pattern) = match word.strip_prefix(m) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let tokens = compile(pattern, self.escape);
                let value: Vec<char> = value.unwrap_or_default().chars().collect();
                Ok(if m == '#' {
                    trim_prefix(&tokens, &value, longest)
                } else {
                    trim_suffix(&tokens, &value, longest)
                })
            }
        }
    }

    /// `${name/pattern/replacement}` or `${name//pattern/replacement}` after the first `/`.
    fn replace(&mut self, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.chars.next();
        }
        let pattern = self.until(Some('/'), true)?;
        let replacement = self.until(Some('}'), false)?;
        let value: Vec<char> = self.get(name).unwrap_or_default().chars().collect();
        let tokens = compile(&pattern, self.escape);
        if tokens.is_empty() {
            return Ok(value.into_iter().collect());
        }
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        // End of the last non-empty match: an empty match right there does not count (as in Go).
        let mut last_end = None;
        while i <= value.len() {
            let longest = if replaced && !all {
                None
            } else {
                prefix_matches(&tokens, &value[i..]).iter().rposition(|&m| m)
            };
            match longest {
                Some(len) if len > 0 || last_end != Some(i) => {
                    out.push_str(&replacement);
                    replaced = true;
                    if len > 0 {
                        i += len;
                        last_end = Some(i);
                        continue;
                    }
                }
                _ => {}
            }
            if let Some(&c) = value.get(i) {
                out.push(c);
            }
            i += 1;
        }
        Ok(out)
    }
}

/// One element of a shell pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: any one character.
    Any,
    Literal(char),
}

fn compile(pattern: &str, escape: char) -> Vec<Token> {
    let mut chars = pattern.chars();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            c if c == escape => Token::Literal(chars.next().unwrap_or(escape)),
            c => Token::Literal(c),
        });
    }
    tokens
}

/// For each `k` in `0..=s.len()`, whether `tokens` match `s[..k]` exactly (a simulation of the
/// pattern's automaton: linear in `s` times the pattern length, no backtracking).
fn prefix_matches(tokens: &[Token], s: &[char]) -> Vec<bool> {
    let n = tokens.len();
    // `states[j]`: the first `j` tokens can match the input read so far.
    let mut states = vec![false; n + 1];
    let close = |states: &mut Vec<bool>| {
        for j in 0..n {
            if states[j] && tokens[j] == Token::Star {
                states[j + 1] = true;
            }
        }
    };
    states[0] = true;
    close(&mut states);
    let mut out = Vec::with_capacity(s.len() + 1);
    out.push(states[n]);
    for &c in s {
        let mut next = vec![false; n + 1];
        for j in 0..n {
            if !states[j] {
                continue;
            }
            match tokens[j] {
                Token::Star => next[j] = true,
                Token::Any => next[j + 1] = true,
                Token::Literal(l) if l == c => next[j + 1] = true,
                Token::Literal(_) => {}
            }
        }
        close(&mut next);
        states = next;
        out.push(states[n]);
        if !states.contains(&true) {
            out.resize(s.len() + 1, false);
            break;
        }
    }
    out
}

/// `value` without its shortest (or longest) prefix matching `tokens`.
fn trim_prefix(tokens: &[Token], value: &[char], longest: bool) -> String {
    let matches = prefix_matches(tokens, value);
    let k = if longest {
        matches.iter().rposition(|&m| m)
    } else {
        matches.iter().position(|&m| m)
    };
    value[k.unwrap_or(0)..].iter().collect()
}

/// `value` without its shortest (or longest) suffix matching `tokens`.
fn trim_suffix(tokens: &[Token], value: &[char], longest: bool) -> String {
    let reversed_tokens: Vec<Token> = tokens.iter().rev().copied().collect();
    let reversed: Vec<char> = value.iter().rev().copied().collect();
    let matches = prefix_matches(&reversed_tokens, &reversed);
    let k = if longest {
        matches.iter().rposition(|&m| m)
    } else {
        matches.iter().position(|&m| m)
    };
    value[..value.len() - k.unwrap_or(0)].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "a" => Some("apple".into()),
            "b" => Some("banana split".into()),
            "empty" => Some(String::new()),
            "path" => Some("/usr/local/bin/tool.tar.gz".into()),
            "1" => Some("one".into()),
            "@" => Some("at".into()),
            "é" => Some("accent".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> Result<String, ExpandError> {
        expand(word, '\\', &env)
    }

    fn ok(word: &str) -> String {
        ex(word).unwrap_or_else(|e| panic!("{word:?}: {e}"))
    }

    fn err(word: &str) -> String {
        match ex(word) {
            Ok(v) => panic!("{word:?} expanded to {v:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn simple_variables() {
        assert_eq!(ok("$a"), "apple");
        assert_eq!(ok("${a}"), "apple");
        assert_eq!(ok("x${a}y"), "xappley");
        assert_eq!(ok("$a-$a"), "apple-apple");
        assert_eq!(ok("$a_x"), "");
        assert_eq!(ok("${a}_x"), "apple_x");
        assert_eq!(ok("$unset"), "");
        assert_eq!(ok("${unset}"), "");
        assert_eq!(ok("$empty|"), "|");
        assert_eq!(ok("$1$11"), "one");
        assert_eq!(ok("$@"), "at");
        assert_eq!(ok("$é"), "accent");
        assert_eq!(ok("no vars here"), "no vars here");
        assert_eq!(ok(""), "");
    }

    #[test]
    fn literal_dollars() {
        assert_eq!(ok("$"), "$");
        assert_eq!(ok("a$ b"), "a$ b");
        assert_eq!(ok("$/x"), "$/x");
        assert_eq!(ok("$%"), "$%");
        assert_eq!(ok("\\$a"), "$a");
        assert_eq!(ok("'$a'"), "$a");
        assert_eq!(ok("\"\\$a\""), "$a");
        assert_eq!(ok("$\"a\""), "$a");
    }

    #[test]
    fn default_and_alternative() {
        assert_eq!(ok("${a:-x}"), "apple");
        assert_eq!(ok("${unset:-x}"), "x");
        assert_eq!(ok("${empty:-x}"), "x");
        assert_eq!(ok("${empty-x}"), "");
        assert_eq!(ok("${unset-x}"), "x");
        assert_eq!(ok("${a-x}"), "apple");
        assert_eq!(ok("${a:+x}"), "x");
        assert_eq!(ok("${a+x}"), "x");
        assert_eq!(ok("${empty:+x}"), "");
        assert_eq!(ok("${empty+x}"), "x");
        assert_eq!(ok("${unset+x}"), "");
        assert_eq!(ok("${unset:+x}"), "");
        assert_eq!(ok("${unset:-}"), "");
        assert_eq!(ok("${a:?}"), "apple");
        assert_eq!(ok("${empty?}"), "");
    }

    #[test]
    fn nested_words() {
        assert_eq!(ok("${unset:-${a}}"), "apple");
        assert_eq!(ok("${unset:-$a and ${b}}"), "apple and banana split");
        assert_eq!(ok("${unset:-${unset2:-deep}}"), "deep");
        assert_eq!(ok("${a:+[${b:-no}]}"), "[banana split]");
        assert_eq!(ok("${unset:-'${a}'}"), "${a}");
        assert_eq!(ok("${unset:-\"}\"}"), "}");
        assert_eq!(ok("${unset:-a\\}b}"), "a}b");
        assert_eq!(ok("\"${unset:-x y}\""), "x y");
    }

    #[test]
    fn required_variables() {
        assert_eq!(err("${unset:?you must set it}"), "unset: you must set it");
        assert_eq!(err("${unset?}"), "unset: is not allowed to be unset");
        assert_eq!(err("${unset:?}"), "unset: is not allowed to be unset");
        assert_eq!(err("${empty:?}"), "empty: is not allowed to be empty");
        assert_eq!(err("${empty:?$a is empty}"), "empty: apple is empty");
        assert_eq!(err("x${unset:-${other:?needed}}"), "other: needed");
    }

    #[test]
    fn quotes() {
        assert_eq!(ok("'a b'"), "a b");
        assert_eq!(ok("'a\\'"), "a\\");
        assert_eq!(ok("\"a b\""), "a b");
        assert_eq!(ok("\"$a's\""), "apple's");
        assert_eq!(ok("\"a\\\"b\""), "a\"b");
        assert_eq!(ok("\"a\\\\b\""), "a\\b");
        assert_eq!(ok("\"a\\nb\""), "a\\nb");
        assert_eq!(ok("\"'$a'\""), "'apple'");
        assert_eq!(ok("x'y'\"z\""), "xyz");
        assert_eq!(ok("''"), "");
        assert_eq!(ok("\"\""), "");
    }

    #[test]
    fn escapes() {
        assert_eq!(ok("a\\ b"), "a b");
        assert_eq!(ok("\\'a"), "'a");
        assert_eq!(ok("\\\\"), "\\");
        assert_eq!(ok("a\\"), "a");
        assert_eq!(ok("C:\\path"), "C:path");
        assert_eq!(expand("C:\\path\\$a", '`', &env).unwrap(), "C:\\path\\apple");
        assert_eq!(expand("`$a'x`'", '`', &env).unwrap(), "$ax`");
        assert_eq!(expand("\"`\"`$a\"", '`', &env).unwrap(), "\"$a");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("${a"), "syntax error: missing '}'");
        assert_eq!(err("${"), "syntax error: missing '}'");
        assert_eq!(err("${a:-x"), "syntax error: missing '}'");
        assert_eq!(err("${a:"), "syntax error: missing '}'");
        assert_eq!(err("${}"), "syntax error: bad substitution");
        assert_eq!(err("${:a}"), "syntax error: bad substitution");
        assert_eq!(err("${{a}}"), "syntax error: bad substitution");
        assert_eq!(err("${a b}"), "unsupported modifier ( ) in substitution");
        assert_eq!(err("${a:=b}"), "unsupported modifier (:=) in substitution");
        assert_eq!(err("${a:#b}"), "unsupported modifier (:#) in substitution");
        assert_eq!(err("'abc"), "unexpected end of statement while looking for matching single-quote");
        assert_eq!(err("\"abc"), "unexpected end of statement while looking for matching double-quote");
        assert_eq!(
            err("\"abc\\"),
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(err("${a/x"), "syntax error: missing '/' in ${}");
        let deep = format!("{}x{}", "${u:-".repeat(100), "}".repeat(100));
        assert_eq!(err(&deep), "syntax error: substitutions nested too deeply");
        let fine = format!("{}x{}", "${u:-".repeat(30), "}".repeat(30));
        assert_eq!(ok(&fine), "x");
    }

    #[test]
    fn prefix_and_suffix_removal() {
        assert_eq!(ok("${path#*/}"), "usr/local/bin/tool.tar.gz");
        assert_eq!(ok("${path##*/}"), "tool.tar.gz");
        assert_eq!(ok("${path%.*}"), "/usr/local/bin/tool.tar");
        assert_eq!(ok("${path%%.*}"), "/usr/local/bin/tool");
        assert_eq!(ok("${path%/*}"), "/usr/local/bin");
        assert_eq!(ok("${a#a?p}"), "le");
        assert_eq!(ok("${a#x}"), "apple");
        assert_eq!(ok("${a%}"), "apple");
        assert_eq!(ok("${a#*}"), "apple");
        assert_eq!(ok("${a##*}"), "");
        assert_eq!(ok("${unset#*}"), "");
        assert_eq!(ok("${a%\\*}"), "apple");
        assert_eq!(ok("${b#banana\\ }"), "split");
    }

    #[test]
    fn replacement() {
        assert_eq!(ok("${a/p/P}"), "aPple");
        assert_eq!(ok("${a//p/P}"), "aPPle");
        assert_eq!(ok("${a/p*/X}"), "aX");
        assert_eq!(ok("${a//?/.}"), ".....");
        assert_eq!(ok("${a/x/y}"), "apple");
        assert_eq!(ok("${a/p/}"), "aple");
        assert_eq!(ok("${a//*/all}"), "all");
        assert_eq!(ok("${b/ /_}"), "banana_split");
        assert_eq!(ok("${a//p/${b%% *}}"), "abananabananale");
        assert_eq!(ok("${a///x}"), "apple");
        assert_eq!(err("${a//}"), "syntax error: missing '/' in ${}");
    }

    /// Random words made of the syntax's pieces: expansion succeeds or fails, never panics.
    #[test]
    fn odd_words_never_panic() {
        #[rustfmt::skip]
        const PIECES: [&str; 30] = [
            "$", "{", "}", "${", "a", "b", "empty", "unset", ":", "-", "+", "?", "#", "%", "/", "//", "*", "'", "\"", "\\", "`",
            " ", "é", "日", "1", "@", "${a:-", "${a#", "${a/", "$(",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let word: String = (0..next() % 16).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            for escape in ['\\', '`'] {
                let _ = expand(&word, escape, &env);
            }
        }
    }

    #[test]
    fn pattern_automaton() {
        let t = compile("a*b?", '\\');
        let s: Vec<char> = "axbyb".chars().collect();
        assert_eq!(prefix_matches(&t, &s), [false, false, false, false, true, false]);
        assert_eq!(prefix_matches(&compile("**", '\\'), &s), [true; 6]);
        assert_eq!(prefix_matches(&[], &s), [true, false, false, false, false, false]);
    }
}
