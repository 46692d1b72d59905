//! Path patterns as Docker uses them: Go's `filepath.Match` (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes,
//! none of which cross a `/`) extended with `**` (any number of directories) for `.dockerignore`.

/// Does `pattern` match the whole of `name`? Both are `/`-separated relative paths.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n)
}

fn match_at(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    while pi < p.len() {
        match p[pi] {
            '*' if p.get(pi + 1) == Some(&'*') => {
                // `**`: any sequence, separators included; `**/` may also match nothing.
                let mut rest = pi + 2;
                if p.get(rest) == Some(&'/') {
                    rest += 1;
                    if match_at(&p[rest..], &n[ni..]) {
                        return true;
                    }
                }
                return (ni..=n.len()).any(|k| match_at(&p[rest..], &n[k..]));
            }
            '*' => {
                let rest = &p[pi + 1..];
                let mut k = ni;
                loop {
                    if match_at(rest, &n[k..]) {
                        return true;
                    }
                    if k >= n.len() || n[k] == '/' {
                        return false;
                    }
                    k += 1;
                }
            }
            '?' => {
                if ni >= n.len() || n[ni] == '/' {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                let Some(&c) = n.get(ni) else { return false };
                if c == '/' {
                    return false;
                }
                match class(&p[pi + 1..], c) {
                    Some((true, used)) => {
                        pi += 1 + used;
                        ni += 1;
                    }
                    _ => return false,
                }
            }
            '\\' if pi + 1 < p.len() => {
                if n.get(ni) != Some(&p[pi + 1]) {
                    return false;
                }
                pi += 2;
                ni += 1;
            }
            c => {
                if n.get(ni) != Some(&c) {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    ni == n.len()
}

/// Match `c` against a character class body (after `[`); returns whether it matched and how many
/// pattern characters the class used, including the closing `]`. `None` for a malformed class.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|h| *h != ']') {
            let mut h = p[i + 1];
            i += 2;
            if h == '\\' {
                h = *p.get(i)?;
                i += 1;
            }
            h
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
    }
}

/// Does the pattern contain wildcard characters?
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexically clean a relative path: drop `.` and empty components, resolve `..` (never above the
/// top), strip leading `/`.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// The rules of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    /// (pattern, is an exception `!pattern`)
    rules: Vec<(String, bool)>,
}

impl Ignore {
    /// Parse `.dockerignore` text: one pattern per line, `#` comments, `!` exceptions.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pat, exception) = match line.strip_prefix('!') {
                Some(p) => (p.trim(), true),
                None => (line, false),
            };
            let pat = clean(pat);
            if pat.is_empty() {
                continue;
            }
            rules.push((pat, exception));
        }
        Ignore { rules }
    }

    /// Is the context-relative path `rel` excluded? A rule matching a parent directory applies to
    /// everything below it; the last matching rule decides.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut out = false;
        for (pat, exception) in &self.rules {
            if Self::rule_matches(pat, rel) {
                out = !exception;
            }
        }
        out
    }

    fn rule_matches(pat: &str, rel: &str) -> bool {
        if matches(pat, rel) {
            return true;
        }
        // A parent directory of `rel` matching the whole pattern.
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            end += i;
            if matches(pat, &rel[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }

    /// Could something below the excluded directory `dir` be re-included by an exception?
    pub fn may_include_below(&self, dir: &str) -> bool {
        self.rules.iter().any(|(pat, exception)| {
            *exception && (pat.starts_with(&format!("{dir}/")) || pat.contains("**") || !pat.contains('/') && has_wildcards(pat))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What a walk of the context (a copy, or the cache key of one) does with `rel`: take it, skip
    /// it, or only look inside an excluded directory for entries an exception re-includes.
    pub fn visit(&self, rel: &str, is_dir: bool) -> Visit {
        if !self.excluded(rel) {
            Visit::Copy
        } else if is_dir && self.may_include_below(rel) {
            Visit::Descend
        } else {
            Visit::Skip
        }
    }
}

/// What a copy does with one source entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Copy,
    Skip,
    /// An excluded directory that an exception may re-include something below: its entries are
    /// offered to the filter, and it is created only if one of them is copied.
    Descend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_semantics() {
        assert!(matches("*.py", "a.py"));
        assert!(!matches("*.py", "dir/a.py"));
        assert!(matches("dir/*.py", "dir/a.py"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "a/c"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[^a-c]x", "bx"));
        assert!(matches("[!a-c]x", "dx"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("file", "file"));
        assert!(!matches("file", "file2"));
        assert!(!matches("[a-", "a"));
    }

    #[test]
    fn double_star() {
        assert!(matches("**/*.go", "a.go"));
        assert!(matches("**/*.go", "x/y/a.go"));
        assert!(matches("**", "x/y"));
        assert!(matches("a/**/b", "a/b"));
        assert!(matches("a/**/b", "a/x/y/b"));
        assert!(!matches("a/**/b", "c/x/b"));
    }

    #[test]
    fn dockerignore_rules() {
        let i = Ignore::parse("# comment\n*.md\n!README.md\nbuild/\n**/*.tmp\n/secret\n");
        assert!(i.excluded("notes.md"));
        assert!(!i.excluded("README.md"));
        assert!(i.excluded("build"));
        assert!(i.excluded("build/out/x.o"));
        assert!(i.excluded("a/b/c.tmp"));
        assert!(i.excluded("secret"));
        assert!(!i.excluded("src/main.rs"));
        assert!(!i.excluded("docs/notes.md"), "*.md does not cross directories");
        let j = Ignore::parse("data\n!data/keep.txt\n");
        assert!(j.excluded("data/big.bin"));
        assert!(!j.excluded("data/keep.txt"));
        assert!(j.may_include_below("data"));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a/./b//c/"), "a/b/c");
        assert_eq!(clean("../../x"), "x");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("."), "");
    }
}
