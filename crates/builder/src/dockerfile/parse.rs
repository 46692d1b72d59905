//! The parser proper, following BuildKit's `frontend/dockerfile/parser` and `instructions`:
//!
//! 1. Parser directives (`# syntax=`, `# escape=`, `# check=`) at the very top.
//! 2. Physical lines are joined into logical lines at escape-newline continuations; comment lines
//!    and blank lines inside a continuation are dropped.
//! 3. Each logical line is one instruction: keyword, `--flags`, arguments; `RUN`, `COPY` and `ADD`
//!    may name heredocs whose bodies are the physical lines that follow.
//! 4. Instructions are grouped into stages; `ARG`s before the first `FROM` are the meta args.

use std::collections::HashMap;
use std::time::Duration;

use super::ast::{self, ArgDef, Command, Copy, Dockerfile, Healthcheck, Heredoc, Instruction, Kind, Loc, Run, Stage};
use super::duration::parse_duration;
use super::lex::{self, FlagWord, HeredocOp, JsonForm, Word};
use super::ParseError;

/// Parse a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    Parser::new(text).parse()
}

/// Every instruction keyword, upper case.
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// A parse error at `loc`.
fn error_at(loc: Loc, message: impl Into<String>) -> ParseError {
    ParseError {
        loc,
        message: message.into(),
    }
}

/// The 1-based column of byte `byte` of `line`.
fn column(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

/// A logical line: physical lines joined at their continuations, and where each piece came from.
#[derive(Debug, Default)]
struct LogicalLine {
    text: String,
    /// One entry per joined physical line, in order.
    pieces: Vec<Piece>,
}

#[derive(Debug)]
struct Piece {
    /// Byte offset of the piece in the logical line.
    offset: usize,
    /// Physical line number and column of the piece's first character.
    line: usize,
    col: usize,
}

impl LogicalLine {
    fn push(&mut self, content: &str, line: usize, col: usize) {
        self.pieces.push(Piece {
            offset: self.text.len(),
            line,
            col,
        });
        self.text.push_str(content);
    }

    /// Where byte `offset` of the logical line was written.
    fn loc(&self, offset: usize) -> Loc {
        let index = self.pieces.partition_point(|p| p.offset <= offset).saturating_sub(1);
        match self.pieces.get(index) {
            Some(piece) => {
                let chars = self.text.get(piece.offset..offset).map_or(0, |s| s.chars().count());
                Loc {
                    line: piece.line,
                    col: piece.col + chars,
                }
            }
            None => Loc { line: 1, col: 1 },
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        error_at(self.loc(offset), message)
    }
}

/// A parser directive line (`# escape=\``).
struct Directive<'a> {
    /// Lower case.
    key: String,
    value: &'a str,
    key_col: usize,
    value_col: usize,
}

/// `line` as a parser directive, if it is one BuildKit knows (`syntax`, `escape`, `check`).
fn directive(line: &str) -> Option<Directive<'_>> {
    let body = line
        .trim_start_matches(char::is_whitespace)
        .strip_prefix('#')?
        .trim_start_matches(char::is_whitespace);
    let key_len = body.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(body.len());
    let (key, rest) = body.split_at(key_len);
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest
        .trim_start_matches(char::is_whitespace)
        .strip_prefix('=')?
        .trim_start_matches(char::is_whitespace);
    let value_col = column(line, line.len() - value.len());
    let value = value.trim_end_matches(char::is_whitespace);
    let key_col = column(line, line.len() - body.len());
    let key = key.to_ascii_lowercase();
    let known = matches!(key.as_str(), "syntax" | "escape" | "check");
    (known && !value.is_empty()).then_some(Directive {
        key,
        value,
        key_col,
        value_col,
    })
}

struct Parser<'t> {
    /// Physical lines, line endings removed.
    lines: Vec<&'t str>,
    /// Index of the next physical line to read.
    next: usize,
    escape: char,
    /// Stage names defined so far, with the line of their `FROM`.
    stage_names: HashMap<String, usize>,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        Parser {
            lines,
            next: 0,
            escape: '\\',
            stage_names: HashMap::new(),
        }
    }

    fn parse(mut self) -> Result<Dockerfile, ParseError> {
        let syntax = self.directives()?;
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        while let Some(line) = self.logical_line() {
            let instruction = self.instruction(&line, 0)?;
            match (&instruction.kind, stages.last_mut()) {
                (Kind::From(_), _) => stages.push(Stage {
                    from: instruction,
                    instructions: Vec::new(),
                }),
                (_, Some(stage)) => stage.instructions.push(instruction),
                (Kind::Arg(_), None) => meta_args.push(instruction),
                (kind, None) => {
                    let message = format!("expected FROM before {} (only ARG may come before the first FROM)", kind.keyword());
                    return Err(error_at(instruction.loc, message));
                }
            }
        }
        if stages.is_empty() {
            let loc = Loc {
                line: self.lines.len().max(1),
                col: 1,
            };
            return Err(error_at(loc, "expected FROM: the Dockerfile has no build stage"));
        }
        Ok(Dockerfile {
            escape: self.escape,
            syntax,
            meta_args,
            stages,
        })
    }

    /// Read the parser directives at the top; returns `# syntax=`.
    fn directives(&mut self) -> Result<Option<String>, ParseError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut syntax = None;
        while let Some(d) = self.lines.get(self.next).and_then(|line| directive(line)) {
            self.next += 1;
            let line = self.next;
            if let Some(first) = seen.insert(d.key.clone(), line) {
                let message = format!("only one {} parser directive can be used (the first is on line {first})", d.key);
                return Err(error_at(Loc { line, col: d.key_col }, message));
            }
            match (d.key.as_str(), d.value) {
                ("escape", "\\") => self.escape = '\\',
                ("escape", "`") => self.escape = '`',
                ("escape", value) => {
                    let message = format!("invalid escape token '{value}': the escape directive accepts only \\ or `");
                    return Err(error_at(Loc { line, col: d.value_col }, message));
                }
                ("syntax", value) => syntax = Some(value.to_string()),
                // `check=` configures BuildKit's linter: accepted, not acted on.
                _ => {}
            }
        }
        Ok(syntax)
    }

    /// The next logical line, skipping comments and blank lines; `None` at the end.
    fn logical_line(&mut self) -> Option<LogicalLine> {
        while let Some(&raw) = self.lines.get(self.next) {
            self.next += 1;
            let text = raw.trim_start_matches(char::is_whitespace);
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let mut line = LogicalLine::default();
            let (content, mut continued) = self.continuation(text);
            line.push(content, self.next, column(raw, raw.len() - text.len()));
            while continued {
                let Some(&raw) = self.lines.get(self.next) else { break };
                self.next += 1;
                let text = raw.trim_start_matches(char::is_whitespace);
                if text.is_empty() || text.starts_with('#') {
                    continue;
                }
                let (content, more) = self.continuation(raw);
                line.push(content, self.next, 1);
                continued = more;
            }
            if !lex::trim(&line.text).is_empty() {
                return Some(line);
            }
        }
        None
    }

    /// Split a trailing continuation off a physical line: an unescaped escape character at the end,
    /// optionally followed by spaces and tabs.
    fn continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        let escapes = trimmed.chars().rev().take_while(|&c| c == self.escape).count();
        if escapes % 2 == 1 {
            (&trimmed[..trimmed.len() - self.escape.len_utf8()], true)
        } else {
            (line, false)
        }
    }

    /// Parse the instruction starting at byte `start` of `line` (0, or after `ONBUILD`).
    fn instruction(&mut self, line: &LogicalLine, start: usize) -> Result<Instruction, ParseError> {
        let rest = line.text.get(start..).unwrap_or("");
        let start = start + rest.len() - rest.trim_start_matches(char::is_whitespace).len();
        let text = lex::trim(&line.text[start..]);
        let end = start + text.len();
        let word_len = text.find(lex::is_blank).unwrap_or(text.len());
        let word = &text[..word_len];
        let Some(keyword) = INSTRUCTIONS.into_iter().find(|k| k.eq_ignore_ascii_case(word)) else {
            return Err(line.error(start, unknown_instruction(word)));
        };
        let after = &text[word_len..];
        let flags_start = start + word_len + after.len() - after.trim_start_matches(char::is_whitespace).len();
        let (flags, args_start) = lex::split_flags(&line.text[flags_start..end], flags_start, self.escape);
        let args = &line.text[args_start..end];
        let trimmed = args.trim_start_matches(char::is_whitespace);
        let ctx = Ctx {
            line,
            keyword,
            offset: start,
            loc: line.loc(start),
            flags,
            args: trimmed,
            args_offset: args_start + args.len() - trimmed.len(),
            escape: self.escape,
        };
        let kind = match keyword {
            "FROM" => self.from(&ctx)?,
            "RUN" => self.run(&ctx)?,
            "CMD" => Kind::Cmd(cmd(&ctx)?),
            "ENTRYPOINT" => Kind::Entrypoint(cmd(&ctx)?),
            "SHELL" => shell(&ctx)?,
            "LABEL" => Kind::Label(key_values(&ctx)?),
            "ENV" => Kind::Env(key_values(&ctx)?),
            "EXPOSE" => expose(&ctx)?,
            "VOLUME" => volume(&ctx)?,
            "USER" => Kind::User(whole(&ctx, "a user name or UID: USER <user>[:<group>]")?),
            "WORKDIR" => Kind::Workdir(whole(&ctx, "a path")?),
            "ARG" => arg(&ctx)?,
            "ONBUILD" => self.onbuild(&ctx)?,
            "STOPSIGNAL" => Kind::Stopsignal(whole(&ctx, "a signal name or number")?),
            "HEALTHCHECK" => healthcheck(&ctx)?,
            "MAINTAINER" => Kind::Maintainer(whole(&ctx, "a name")?),
            "COPY" => self.copy(&ctx, false)?,
            _ => self.copy(&ctx, true)?,
        };
        Ok(Instruction {
            loc: ctx.loc,
            source: text.to_string(),
            kind,
        })
    }

    /// `FROM [--platform=<p>] <image> [AS <name>]`.
    fn from(&mut self, ctx: &Ctx) -> Result<Kind, ParseError> {
        let flags = ctx.flags(&[("platform", FlagKind::Value)], &[])?;
        let words = ctx.words();
        let is_as = |w: &Word| w.text.eq_ignore_ascii_case("as");
        let name = match words.as_slice() {
            [] => return Err(ctx.error_here("FROM requires an image: FROM [--platform=<platform>] <image> [AS <name>]")),
            [_] => None,
            [_, w, ..] if !is_as(w) => {
                return Err(ctx.error(w.offset, format!("FROM expects AS <name> after the image, found {:?}", w.text)));
            }
            [_, w] => return Err(ctx.error(w.offset, "FROM requires a stage name after AS")),
            [_, _, name] => Some(self.stage_name(ctx, name)?),
            [_, _, _, extra, ..] => {
                return Err(ctx.error(
                    extra.offset,
                    format!("FROM expects nothing after the stage name, found {:?}", extra.text),
                ));
            }
        };
        let image = words.first().map(|w| w.text.to_string()).unwrap_or_default();
        Ok(Kind::From(ast::From {
            image,
            name,
            platform: flags.value("platform"),
        }))
    }

    /// Validate a stage name (lower-cased, as BuildKit does) and check it is not used yet.
    fn stage_name(&mut self, ctx: &Ctx, word: &Word) -> Result<String, ParseError> {
        let name = word.text.to_lowercase();
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
        if !valid {
            let message = format!(
                "invalid stage name {:?}: a name starts with a letter and has only letters, digits, '-', '_' and '.'",
                word.text
            );
            return Err(ctx.error(word.offset, message));
        }
        if let Some(first) = self.stage_names.get(&name) {
            return Err(ctx.error(word.offset, format!("duplicate stage name {name:?} (first used on line {first})")));
        }
        self.stage_names.insert(name.clone(), ctx.loc.line);
        Ok(name)
    }

    /// `RUN [--network=<mode>] <command>`, with heredocs.
    fn run(&mut self, ctx: &Ctx) -> Result<Kind, ParseError> {
        let flags = ctx.flags(&[("network", FlagKind::Value)], &["mount", "security", "device"])?;
        if let Some((network, offset)) = flags.value_at("network") {
            if !matches!(network, "default" | "none" | "host") {
                return Err(ctx.error(offset, format!("invalid network mode {network:?} (expected default, none or host)")));
            }
        }
        let command = command(ctx, ctx.args, ctx.args_offset)?
            .filter(|c| !matches!(c, Command::Exec(args) if args.is_empty()))
            .ok_or_else(|| ctx.error_here("RUN requires a command to run"))?;
        let heredocs = match &command {
            Command::Shell(script) => self.read_heredocs(ctx.line, lex::shell_heredocs(script, ctx.args_offset))?,
            Command::Exec(_) => Vec::new(),
        };
        Ok(Kind::Run(Run {
            command,
            heredocs,
            network: flags.value("network"),
        }))
    }

    /// `COPY`/`ADD [flags] <src>... <dest>` or the JSON form; heredoc sources.
    fn copy(&mut self, ctx: &Ctx, add: bool) -> Result<Kind, ParseError> {
        use FlagKind::{Switch, Value};
        let flags = if add {
            let known = [
                ("chown", Value),
                ("chmod", Value),
                ("checksum", Value),
                ("link", Switch),
                ("keep-git-dir", Switch),
            ];
            ctx.flags(&known, &["unpack", "exclude"])?
        } else {
            ctx.flags(
                &[("from", Value), ("chown", Value), ("chmod", Value), ("link", Switch)],
                &["parents", "exclude"],
            )?
        };
        let (args, json): (Vec<(String, usize)>, bool) = match lex::json_array(ctx.args) {
            JsonForm::Strings(args) => (args.into_iter().map(|a| (a, ctx.args_offset)).collect(), true),
            JsonForm::NotStrings => return Err(ctx.error(ctx.args_offset, NOT_STRINGS)),
            JsonForm::NotJson => (ctx.words().iter().map(|w| (w.text.to_string(), w.offset)).collect(), false),
        };
        let keyword = ctx.keyword;
        let Some(((dest, dest_offset), sources)) = args.split_last().filter(|(_, sources)| !sources.is_empty()) else {
            let message = format!("{keyword} requires at least two arguments: {keyword} [flags] <source>... <destination>");
            return Err(ctx.error_here(message));
        };
        if !json && lex::heredoc_word(dest, *dest_offset).is_some() {
            return Err(ctx.error(*dest_offset, format!("{keyword} cannot accept a heredoc as a destination")));
        }
        let mut ops = Vec::new();
        let sources = sources
            .iter()
            .map(|(source, offset)| match lex::heredoc_word(source, *offset).filter(|_| !json) {
                Some(op) => {
                    let source = format!("<<{}", op.name);
                    ops.push(op);
                    source
                }
                None => source.clone(),
            })
            .collect();
        let copy = Copy {
            sources,
            dest: dest.clone(),
            from: flags.value("from"),
            chown: flags.value("chown"),
            chmod: flags.value("chmod"),
            link: flags.switch("link"),
            checksum: flags.value("checksum"),
            keep_git_dir: flags.switch("keep-git-dir"),
            heredocs: self.read_heredocs(ctx.line, ops)?,
        };
        Ok(if add { Kind::Add(copy) } else { Kind::Copy(copy) })
    }

    /// `ONBUILD <instruction>`.
    fn onbuild(&mut self, ctx: &Ctx) -> Result<Kind, ParseError> {
        ctx.no_flags()?;
        let trigger = ctx.args.split(lex::is_blank).next().unwrap_or_default().to_ascii_uppercase();
        match trigger.as_str() {
            "" => Err(ctx.error_here("ONBUILD requires an instruction to run in builds based on this image")),
            "ONBUILD" => Err(ctx.error(ctx.args_offset, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")),
            "FROM" | "MAINTAINER" => Err(ctx.error(ctx.args_offset, format!("{trigger} isn't allowed as an ONBUILD trigger"))),
            _ => Ok(Kind::Onbuild(Box::new(self.instruction(ctx.line, ctx.args_offset)?))),
        }
    }

    /// Read the bodies of `ops` from the physical lines after the instruction, in order.
    fn read_heredocs(&mut self, line: &LogicalLine, ops: Vec<HeredocOp>) -> Result<Vec<Heredoc>, ParseError> {
        let mut heredocs = Vec::with_capacity(ops.len());
        for op in ops {
            let mut content = String::new();
            loop {
                let Some(&body) = self.lines.get(self.next) else {
                    let message = format!("unterminated heredoc: no line {:?} ends it before the end of the file", op.name);
                    return Err(line.error(op.offset, message));
                };
                self.next += 1;
                let body = if op.chomp { body.trim_start_matches('\t') } else { body };
                if body == op.name {
                    break;
                }
                content.push_str(body);
                content.push('\n');
            }
            heredocs.push(Heredoc {
                name: op.name,
                content,
                expand: op.expand,
            });
        }
        Ok(heredocs)
    }
}

/// "unknown instruction: X", with a suggestion for a likely typo.
fn unknown_instruction(word: &str) -> String {
    let upper = word.to_uppercase();
    let len = upper.chars().count();
    let suggestion = (3..=12)
        .contains(&len)
        .then(|| INSTRUCTIONS.into_iter().map(|k| (edit_distance(&upper, k), k)).min())
        .flatten()
        .filter(|&(distance, _)| distance <= if len <= 4 { 1 } else { 2 });
    match suggestion {
        Some((_, keyword)) => format!("unknown instruction: {word} (did you mean {keyword}?)"),
        None => format!("unknown instruction: {word}"),
    }
}

/// Levenshtein distance between `a` and `b`, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// What one instruction is made of, for the per-instruction parsers.
struct Ctx<'l> {
    line: &'l LogicalLine,
    /// Upper case.
    keyword: &'static str,
    /// Byte offset of the keyword in the logical line, and where it was written.
    offset: usize,
    loc: Loc,
    flags: Vec<FlagWord>,
    /// The arguments after the flags, trimmed, and their byte offset in the logical line.
    args: &'l str,
    args_offset: usize,
    escape: char,
}

/// A flag that takes a value (`--from=x`) or a boolean switch (`--link`, `--link=false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Value,
    Switch,
}

/// The flags given to an instruction: value (or `"true"`/`"false"` for switches) and offset.
#[derive(Debug, Default)]
struct Flags(HashMap<&'static str, (String, usize)>);

impl Flags {
    fn value(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|(value, _)| value.clone())
    }

    fn value_at(&self, name: &str) -> Option<(&str, usize)> {
        self.0.get(name).map(|(value, offset)| (value.as_str(), *offset))
    }

    fn switch(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|(value, _)| value == "true")
    }
}

impl Ctx<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        self.line.error(offset, message)
    }

    /// An error about the instruction as a whole, reported at its keyword.
    fn error_here(&self, message: impl Into<String>) -> ParseError {
        self.error(self.offset, message)
    }

    fn words(&self) -> Vec<Word<'_>> {
        lex::words(self.args, self.args_offset, self.escape)
    }

    /// Check the flags against the `known` ones; `unsupported` are BuildKit flags Berth refuses.
    fn flags(&self, known: &[(&'static str, FlagKind)], unsupported: &[&str]) -> Result<Flags, ParseError> {
        let mut flags = Flags::default();
        for flag in &self.flags {
            let error = |message: String| Err(self.error(flag.offset, message));
            let Some(&(name, kind)) = known.iter().find(|(name, _)| *name == flag.name) else {
                if unsupported.contains(&flag.name.as_str()) {
                    return error(format!("{} --{} is not supported by Berth", self.keyword, flag.name));
                }
                return error(format!("unknown flag: --{}", flag.name));
            };
            if flags.0.contains_key(name) {
                return error(format!("duplicate flag specified: --{name}"));
            }
            let value = match (kind, flag.value.as_deref()) {
                (_, Some("")) | (FlagKind::Value, None) => return error(format!("missing a value on flag: --{name}")),
                (FlagKind::Value, Some(value)) => value.to_string(),
                (FlagKind::Switch, None) => "true".to_string(),
                (FlagKind::Switch, Some(value)) if value.eq_ignore_ascii_case("true") => "true".to_string(),
                (FlagKind::Switch, Some(value)) if value.eq_ignore_ascii_case("false") => "false".to_string(),
                (FlagKind::Switch, Some(value)) => return error(format!("expecting boolean value for flag --{name}, not: {value}")),
            };
            flags.0.insert(name, (value, flag.offset));
        }
        Ok(flags)
    }

    fn no_flags(&self) -> Result<(), ParseError> {
        self.flags(&[], &[]).map(drop)
    }
}

/// Exec form (JSON array of strings) or shell form of `text` (at byte `offset`); `None` if empty.
fn command(ctx: &Ctx, text: &str, offset: usize) -> Result<Option<Command>, ParseError> {
    if text.is_empty() {
        return Ok(None);
    }
    match lex::json_array(text) {
        JsonForm::Strings(args) => Ok(Some(Command::Exec(args))),
        JsonForm::NotStrings => Err(ctx.error(offset, NOT_STRINGS)),
        JsonForm::NotJson => Ok(Some(Command::Shell(text.to_string()))),
    }
}

/// `CMD` and `ENTRYPOINT`.
fn cmd(ctx: &Ctx) -> Result<Command, ParseError> {
    ctx.no_flags()?;
    command(ctx, ctx.args, ctx.args_offset)?.ok_or_else(|| {
        let keyword = ctx.keyword;
        ctx.error_here(format!(
            "{keyword} requires a command: {keyword} [\"executable\", \"param\"...] or {keyword} command param..."
        ))
    })
}

/// `SHELL ["executable", "parameters"...]`.
fn shell(ctx: &Ctx) -> Result<Kind, ParseError> {
    ctx.no_flags()?;
    match lex::json_array(ctx.args) {
        JsonForm::Strings(args) if !args.is_empty() => Ok(Kind::Shell(args)),
        JsonForm::NotStrings => Err(ctx.error(ctx.args_offset, NOT_STRINGS)),
        JsonForm::NotJson if !ctx.args.is_empty() => Err(ctx.error(
            ctx.args_offset,
            "SHELL requires the arguments to be in JSON array form, e.g. SHELL [\"/bin/sh\", \"-c\"]",
        )),
        _ => Err(ctx.error_here("SHELL requires at least one argument: SHELL [\"executable\", \"parameters\"...]")),
    }
}

/// `LABEL k=v...` and `ENV k=v...` (or the legacy `ENV k value` / `LABEL k value`, which BuildKit
/// still accepts and real Dockerfiles still use, e.g. `LABEL maintainer Name <mail>`).
fn key_values(ctx: &Ctx) -> Result<Vec<(String, String)>, ParseError> {
    ctx.no_flags()?;
    let keyword = ctx.keyword;
    let words = ctx.words();
    let Some(first) = words.first() else {
        return Err(ctx.error_here(format!("{keyword} requires at least one argument: {keyword} <name>=<value> ...")));
    };
    if lex::find_unquoted(first.text, '=', ctx.escape).is_none() {
        // Legacy `ENV name value...`: the value is the rest of the line, as written.
        let value = lex::trim(ctx.args.get(first.end().saturating_sub(ctx.args_offset)..).unwrap_or_default());
        if value.is_empty() {
            let message = format!(
                "{keyword} {} requires a value: {keyword} <name>=<value> ... (or the legacy {keyword} <name> <value>)",
                first.text
            );
            return Err(ctx.error(first.offset, message));
        }
        return Ok(vec![(first.text.to_string(), value.to_string())]);
    }
    words
        .iter()
        .map(|word| match lex::find_unquoted(word.text, '=', ctx.escape) {
            None => Err(ctx.error(
                word.offset,
                format!("{keyword} requires <name>=<value> pairs: can't find = in {:?}", word.text),
            )),
            Some(0) => Err(ctx.error(word.offset, format!("{keyword} names can not be blank"))),
            Some(eq) => Ok((word.text[..eq].to_string(), word.text[eq + 1..].to_string())),
        })
        .collect()
}

/// `EXPOSE <port>[/<protocol>]...`.
fn expose(ctx: &Ctx) -> Result<Kind, ParseError> {
    ctx.no_flags()?;
    let ports: Vec<String> = ctx.words().iter().map(|w| w.text.to_string()).collect();
    if ports.is_empty() {
        return Err(ctx.error_here("EXPOSE requires at least one port: EXPOSE <port>[/<protocol>] ..."));
    }
    Ok(Kind::Expose(ports))
}

/// `VOLUME ["/path"...]` or `VOLUME /path...`.
fn volume(ctx: &Ctx) -> Result<Kind, ParseError> {
    ctx.no_flags()?;
    let paths: Vec<String> = match lex::json_array(ctx.args) {
        JsonForm::Strings(paths) => {
            if paths.iter().any(|p| lex::trim(p).is_empty()) {
                return Err(ctx.error(ctx.args_offset, "VOLUME paths can not be empty strings"));
            }
            paths.iter().map(|p| lex::trim(p).to_string()).collect()
        }
        JsonForm::NotStrings => return Err(ctx.error(ctx.args_offset, NOT_STRINGS)),
        JsonForm::NotJson => ctx.words().iter().map(|w| w.text.to_string()).collect(),
    };
    if paths.is_empty() {
        return Err(ctx.error_here("VOLUME requires at least one path: VOLUME [\"/path\"] or VOLUME /path ..."));
    }
    Ok(Kind::Volume(paths))
}

/// Instructions whose argument is the whole rest of the line (`USER`, `WORKDIR`, ...).
fn whole(ctx: &Ctx, what: &str) -> Result<String, ParseError> {
    ctx.no_flags()?;
    if ctx.args.is_empty() {
        return Err(ctx.error_here(format!("{} requires {what}", ctx.keyword)));
    }
    Ok(ctx.args.to_string())
}

/// `ARG <name>[=<default>]...`.
fn arg(ctx: &Ctx) -> Result<Kind, ParseError> {
    ctx.no_flags()?;
    let words = ctx.words();
    if words.is_empty() {
        return Err(ctx.error_here("ARG requires at least one name: ARG <name>[=<default value>] ..."));
    }
    words
        .iter()
        .map(|word| {
            let (name, default) = match lex::find_unquoted(word.text, '=', ctx.escape) {
                Some(eq) => (&word.text[..eq], Some(word.text[eq + 1..].to_string())),
                None => (word.text, None),
            };
            if name.is_empty() {
                return Err(ctx.error(word.offset, "ARG names can not be blank"));
            }
            Ok(ArgDef {
                name: name.to_string(),
                default,
            })
        })
        .collect::<Result<_, _>>()
        .map(Kind::Arg)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD <command>`.
fn healthcheck(ctx: &Ctx) -> Result<Kind, ParseError> {
    let kind = ctx.args.split(lex::is_blank).next().unwrap_or_default();
    let rest = ctx.args[kind.len()..].trim_start_matches(char::is_whitespace);
    let rest_offset = ctx.args_offset + ctx.args.len() - rest.len();
    match kind.to_ascii_uppercase().as_str() {
        "" => Err(ctx.error_here("HEALTHCHECK requires NONE or CMD <command>")),
        "NONE" => {
            if let Some(flag) = ctx.flags.first() {
                return Err(ctx.error(flag.offset, "HEALTHCHECK NONE takes no flags"));
            }
            if !rest.is_empty() {
                return Err(ctx.error(rest_offset, "HEALTHCHECK NONE takes no arguments"));
            }
            Ok(Kind::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            let names = ["interval", "timeout", "start-period", "start-interval", "retries"];
            let flags = ctx.flags(&names.map(|name| (name, FlagKind::Value)), &[])?;
            let command = command(ctx, rest, rest_offset)?
                .filter(|c| !matches!(c, Command::Exec(args) if args.is_empty()))
                .ok_or_else(|| ctx.error(ctx.args_offset, "HEALTHCHECK CMD requires a command"))?;
            let duration = |name: &str| -> Result<Option<String>, ParseError> {
                let Some((value, offset)) = flags.value_at(name) else {
                    return Ok(None);
                };
                match parse_duration(value) {
                    Err(e) => Err(ctx.error(offset, format!("invalid --{name}: {e}"))),
                    Ok(d) if !d.is_zero() && d < Duration::from_millis(1) => {
                        Err(ctx.error(offset, format!("--{name} cannot be less than 1ms")))
                    }
                    Ok(_) => Ok(Some(value.to_string())),
                }
            };
            let retries = match flags.value_at("retries") {
                None => None,
                Some((value, offset)) => Some(match value.parse::<i64>() {
                    Ok(n) if n < 0 => return Err(ctx.error(offset, format!("--retries cannot be negative ({n})"))),
                    Ok(n) => u32::try_from(n)
                        .ok()
                        .filter(|&n| i32::try_from(n).is_ok())
                        .ok_or_else(|| ctx.error(offset, format!("--retries is too large ({n})")))?,
                    Err(_) => return Err(ctx.error(offset, format!("invalid --retries: {value:?} is not a whole number"))),
                }),
            };
            Ok(Kind::Healthcheck(Healthcheck::Check {
                command,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            }))
        }
        _ => Err(ctx.error(ctx.args_offset, format!("unknown HEALTHCHECK type {kind:?} (expected CMD or NONE)"))),
    }
}

#[cfg(test)]
mod tests;
