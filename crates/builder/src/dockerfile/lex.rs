//! Lexical helpers for the parser: blanks, quote-aware word splitting, `--flag` words, JSON arrays and
//! here-document operators. Everything here works on `&str` slices and byte offsets taken from
//! `char_indices`, so no slicing can fall inside a character.

/// Blanks that separate words on a line (BuildKit's `[\t\v\f\r ]`).
pub(super) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Shell metacharacters that end a word (used to find the end of a heredoc delimiter).
fn is_shell_meta(c: char) -> bool {
    matches!(c, ';' | '&' | '|' | '(' | ')' | '<' | '>')
}

/// `s` without leading or trailing whitespace (Unicode, as Go's `strings.TrimSpace`).
pub(super) fn trim(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

/// A word of a line, raw: quotes and escapes are still in `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Word<'a> {
    pub text: &'a str,
    /// Byte offset of the word in its logical line.
    pub offset: usize,
}

impl Word<'_> {
    /// Byte offset just after the word.
    pub fn end(&self) -> usize {
        self.offset + self.text.len()
    }
}

/// Split `s`, found at byte `offset` of its line, into blank-separated words. Blanks inside quotes or
/// escaped with `escape` do not split; the escape character is literal inside single quotes. An
/// unterminated quote runs to the end of `s`.
pub(super) fn words(s: &str, offset: usize, escape: char) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == escape && q == '"' {
                chars.next();
            }
            continue;
        }
        if is_blank(c) {
            if let Some(st) = start.take() {
                out.push(Word {
                    text: &s[st..i],
                    offset: offset + st,
                });
            }
            continue;
        }
        start.get_or_insert(i);
        if c == escape {
            chars.next();
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        }
    }
    if let Some(st) = start {
        out.push(Word {
            text: &s[st..],
            offset: offset + st,
        });
    }
    out
}

/// The byte index of the first `target` in `s` that is neither quoted nor escaped.
pub(super) fn find_unquoted(s: &str, target: char, escape: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => {
                chars.next();
            }
            Some(_) => {}
            None if c == target => return Some(i),
            None if c == escape => {
                chars.next();
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {}
        }
    }
    None
}

/// `s` with quotes removed and escapes resolved (no variable expansion), as BuildKit does for the
/// words of `--flag`s.
pub(super) fn unquote(s: &str, escape: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => out.extend(chars.next()),
            Some(_) => out.push(c),
            None if c == escape => out.extend(chars.next()),
            None if c == '\'' || c == '"' => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

/// One `--name[=value]` word before an instruction's arguments, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlagWord {
    pub name: String,
    pub value: Option<String>,
    /// Byte offset of the `--` in the logical line.
    pub offset: usize,
}

/// Split the leading `--flag` words off `s` (found at byte `offset` of its line). Returns the flags
/// and the byte offset (in the line) where the arguments start. A lone `--` ends the flags.
pub(super) fn split_flags(s: &str, offset: usize, escape: char) -> (Vec<FlagWord>, usize) {
    let mut flags = Vec::new();
    for word in words(s, offset, escape) {
        if !word.text.starts_with("--") {
            return (flags, word.offset);
        }
        if word.text == "--" {
            return (flags, word.end());
        }
        let unquoted = unquote(&word.text[2..], escape);
        let (name, value) = match unquoted.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (unquoted, None),
        };
        flags.push(FlagWord {
            name,
            value,
            offset: word.offset,
        });
    }
    (flags, offset + s.len())
}

/// What [`json_array`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JsonForm {
    /// A JSON array of strings (exec form).
    Strings(Vec<String>),
    /// A JSON array with something other than a string in it: an error, as in Docker.
    NotStrings,
    /// Not a JSON array at all: the caller falls back to the shell/word form.
    NotJson,
}

/// Decode `s` as a JSON array of strings, the way Docker tells exec form from shell form.
pub(super) fn json_array(s: &str) -> JsonForm {
    let s = s.trim_start_matches(char::is_whitespace);
    if !s.starts_with('[') {
        return JsonForm::NotJson;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(s) {
        Err(_) => JsonForm::NotJson,
        Ok(values) => values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(JsonForm::NotStrings, JsonForm::Strings),
    }
}

/// A here-document operator (`<<EOF`, `<<-EOF`, `<<"EOF"`) found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeredocOp {
    /// The delimiter, quotes removed.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body lines and the terminator.
    pub chomp: bool,
    /// False when any part of the delimiter was quoted or escaped.
    pub expand: bool,
    /// Byte offset of the operator (or of its file-descriptor digits) in the logical line.
    pub offset: usize,
}

/// The heredoc operators in a shell command line `s` (found at byte `offset` of its line), in order.
///
/// As a shell reads it: `<<` starts a heredoc when it is unquoted, unescaped, at the start of a word
/// (after a blank or a metacharacter, optionally after file-descriptor digits as in `2<<EOF`) and is
/// followed by a non-empty delimiter word; `<<<` (a here-string) is not a heredoc. The delimiter ends
/// at a blank or a shell metacharacter, so `cat <<EOF>out` is delimited by `EOF`.
pub(super) fn shell_heredocs(s: &str, offset: usize) -> Vec<HeredocOp> {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| cs.get(i).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut i = 0;
    // Index where the current word started, and whether it holds only digits so far.
    let mut word_start = 0;
    let mut digits_only = true;
    while let Some(c) = at(i) {
        if is_blank(c) || (is_shell_meta(c) && c != '<') {
            i += 1;
            word_start = i;
            digits_only = true;
            continue;
        }
        if c == '<' {
            if at(i + 1) == Some('<') && at(i + 2) == Some('<') {
                // A here-string (`<<<word`).
                i += 3;
            } else if at(i + 1) == Some('<') && digits_only {
                let mut j = i + 2;
                let chomp = at(j) == Some('-');
                if chomp {
                    j += 1;
                }
                while matches!(at(j), Some(' ' | '\t')) {
                    j += 1;
                }
                match delimiter(&cs, j) {
                    Some((name, quoted, end)) => {
                        out.push(HeredocOp {
                            name,
                            chomp,
                            expand: !quoted,
                            offset: offset + cs[word_start].0,
                        });
                        i = end;
                    }
                    None => i += 2,
                }
            } else {
                i += 1;
            }
            word_start = i;
            digits_only = true;
            continue;
        }
        match c {
            '\\' => i += 2,
            '\'' => {
                i += 1;
                while at(i).is_some_and(|c| c != '\'') {
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                i += 1;
                while let Some(c) = at(i) {
                    if c == '"' {
                        break;
                    }
                    i += if c == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => i += 1,
        }
        digits_only = digits_only && c.is_ascii_digit();
    }
    out
}

/// A word that is entirely a heredoc operator (`<<EOF`, `<<-EOF`, `<<'EOF'`): how COPY and ADD name a
/// heredoc source. `offset` is the word's byte offset in its line.
pub(super) fn heredoc_word(word: &str, offset: usize) -> Option<HeredocOp> {
    let rest = word.strip_prefix("<<")?;
    if rest.starts_with('<') {
        return None;
    }
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let cs: Vec<(usize, char)> = rest.char_indices().collect();
    match delimiter(&cs, 0) {
        Some((name, quoted, end)) if end == cs.len() => Some(HeredocOp {
            name,
            chomp,
            expand: !quoted,
            offset,
        }),
        _ => None,
    }
}

/// Read a heredoc delimiter word starting at `cs[j]`: returns its unquoted text, whether any part was
/// quoted or escaped, and the index just after it. `None` if it is empty or has an unterminated quote.
fn delimiter(cs: &[(usize, char)], mut j: usize) -> Option<(String, bool, usize)> {
    let at = |i: usize| cs.get(i).map(|&(_, c)| c);
    let mut name = String::new();
    let mut quoted = false;
    while let Some(c) = at(j) {
        if is_blank(c) || is_shell_meta(c) {
            break;
        }
        j += 1;
        match c {
            '\'' => {
                quoted = true;
                loop {
                    let c = at(j)?;
                    j += 1;
                    if c == '\'' {
                        break;
                    }
                    name.push(c);
                }
            }
            '"' => {
                quoted = true;
                loop {
                    let c = at(j)?;
                    j += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let next = at(j)?;
                            j += 1;
                            if !matches!(next, '"' | '\\' | '$' | '`') {
                                name.push('\\');
                            }
                            name.push(next);
                        }
                        _ => name.push(c),
                    }
                }
            }
            '\\' => {
                quoted = true;
                name.push(at(j)?);
                j += 1;
            }
            _ => name.push(c),
        }
    }
    (!name.is_empty()).then_some((name, quoted, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(ws: &[Word<'a>]) -> Vec<&'a str> {
        ws.iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_respect_quotes_and_escapes() {
        let ws = words(r#"  a "b c"  d\ e 'f \' g"h"i"#, 10, '\\');
        assert_eq!(texts(&ws), ["a", r#""b c""#, r"d\ e", r"'f \'", r#"g"h"i"#]);
        assert_eq!(ws[0].offset, 12);
        assert_eq!(ws[1].offset, 14);
        assert_eq!(texts(&words(r#""a \" b" c"#, 0, '\\')), [r#""a \" b""#, "c"]);
        assert_eq!(texts(&words("a` b c", 0, '`')), ["a` b", "c"]);
        assert_eq!(texts(&words("\"unterminated x", 0, '\\')), ["\"unterminated x"]);
        assert_eq!(texts(&words("é ü\\", 0, '\\')), ["é", "ü\\"]);
        assert!(words(" \t ", 0, '\\').is_empty());
    }

    #[test]
    fn find_unquoted_skips_quotes_and_escapes() {
        assert_eq!(find_unquoted("a=b", '=', '\\'), Some(1));
        assert_eq!(find_unquoted(r#""a=b"=c"#, '=', '\\'), Some(5));
        assert_eq!(find_unquoted(r"a\=b=c", '=', '\\'), Some(4));
        assert_eq!(find_unquoted("'='", '=', '\\'), None);
    }

    #[test]
    fn unquote_removes_quotes() {
        assert_eq!(unquote(r#"a"b c"d'e f'\ g"#, '\\'), "ab cde f g");
        assert_eq!(unquote(r#"'a\b'"c\"d""#, '\\'), r#"a\bc"d"#);
        assert_eq!(unquote("trailing\\", '\\'), "trailing");
    }

    #[test]
    fn flags_split_off() {
        let (flags, at) = split_flags("--a=1 --b \"--c\" x", 4, '\\');
        assert_eq!(
            flags,
            [
                FlagWord {
                    name: "a".into(),
                    value: Some("1".into()),
                    offset: 4
                },
                FlagWord {
                    name: "b".into(),
                    value: None,
                    offset: 10
                },
            ]
        );
        assert_eq!(at, 14);
        let (flags, at) = split_flags("--x=\"a b\" -- --y", 0, '\\');
        assert_eq!(flags[0].value.as_deref(), Some("a b"));
        assert_eq!(at, 12);
        assert_eq!(split_flags("--x", 0, '\\').1, 3);
        assert_eq!(split_flags("", 7, '\\'), (vec![], 7));
    }

    #[test]
    fn json_arrays() {
        assert_eq!(json_array(r#" ["a", "b c"] "#), JsonForm::Strings(vec!["a".into(), "b c".into()]));
        assert_eq!(json_array("[]"), JsonForm::Strings(vec![]));
        assert_eq!(json_array("[1]"), JsonForm::NotStrings);
        assert_eq!(json_array(r#"["a"] x"#), JsonForm::NotJson);
        assert_eq!(json_array("[ -f x ]"), JsonForm::NotJson);
        assert_eq!(json_array("echo"), JsonForm::NotJson);
    }

    fn op(name: &str, chomp: bool, expand: bool, offset: usize) -> HeredocOp {
        HeredocOp {
            name: name.into(),
            chomp,
            expand,
            offset,
        }
    }

    #[test]
    fn shell_heredoc_operators() {
        assert_eq!(shell_heredocs("<<EOF", 0), [op("EOF", false, true, 0)]);
        assert_eq!(shell_heredocs("cat <<-'A B' >x", 4), [op("A B", true, false, 8)]);
        assert_eq!(
            shell_heredocs("a <<A && b <<\"B\"", 0),
            [op("A", false, true, 2), op("B", false, false, 11)]
        );
        assert_eq!(shell_heredocs("cat << EOF", 0), [op("EOF", false, true, 4)]);
        assert_eq!(shell_heredocs("cat <<EOF>out", 0), [op("EOF", false, true, 4)]);
        assert_eq!(shell_heredocs("cat 2<<E", 0), [op("E", false, true, 4)]);
        assert_eq!(shell_heredocs("(cat <<E)", 0), [op("E", false, true, 5)]);
        assert_eq!(shell_heredocs("a;<<E", 0), [op("E", false, true, 2)]);
        assert_eq!(shell_heredocs(r"cat <<\E", 0), [op("E", false, false, 4)]);
        assert_eq!(shell_heredocs(r#"cat <<"a\"b""#, 0), [op("a\"b", false, false, 4)]);
        for none in [
            "echo \"a<<b\"",
            "echo '<<EOF'",
            "echo a<<b",
            "cat<<E",
            "cat <<<word",
            r"echo \<<E",
            "cat <<",
            "cat <<''",
            "cat <<'EOF",
        ] {
            assert_eq!(shell_heredocs(none, 0), [], "{none}");
        }
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(heredoc_word("<<EOF", 3), Some(op("EOF", false, true, 3)));
        assert_eq!(heredoc_word("<<-'EOF'", 0), Some(op("EOF", true, false, 0)));
        assert_eq!(heredoc_word("<<EOF>x", 0), None);
        assert_eq!(heredoc_word("<<", 0), None);
        assert_eq!(heredoc_word("<<<x", 0), None);
        assert_eq!(heredoc_word("file", 0), None);
    }
}
