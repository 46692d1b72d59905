//! Parsing a template: the text is cut into text and actions, actions are lexed into tokens and
//! parsed into pipelines, and `if`/`range`/`with` blocks into a tree of nodes.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::exec::{exec, Vars};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Lit(Value),
    Ident(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Comma,
}

#[derive(Debug, Clone)]
pub(super) enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Ident(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone)]
pub(super) struct Pipeline {
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

enum Piece {
    Text(String),
    Action(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

fn split_pieces(src: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        let mut text = &rest[..i];
        let mut after = &rest[i + 2..];
        if after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n") {
            text = text.trim_end();
            after = &after[1..];
        }
        out.push(Piece::Text(text.to_string()));
        let j = find_close(after).ok_or_else(|| anyhow!("template: unclosed action"))?;
        let mut inner = &after[..j];
        rest = &after[j + 2..];
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            rest = rest.trim_start();
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(Piece::Action(inner.to_string()));
        }
    }
    out.push(Piece::Text(rest.to_string()));
    Ok(out)
}

/// Find the closing `}}`, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let path = |i: &mut usize| -> Vec<String> {
        let mut p = Vec::new();
        while *i < chars.len() && chars[*i] == '.' && chars.get(*i + 1).is_some_and(|c| is_ident(*c)) {
            *i += 1;
            let st = *i;
            while *i < chars.len() && is_ident(chars[*i]) {
                *i += 1;
            }
            p.push(chars[st..*i].iter().collect());
        }
        p
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
                let p = path(&mut i);
                if !p.is_empty() {
                    bail!("template: field access on parenthesized expressions is not supported");
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Declare);
                i += 1;
            }
            '.' => {
                let p = path(&mut i);
                if p.is_empty() {
                    out.push(Tok::Dot);
                    i += 1;
                } else {
                    out.push(Tok::Field(p));
                }
            }
            '$' => {
                i += 1;
                let st = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let name: String = chars[st..i].iter().collect();
                out.push(Tok::Var(name, path(&mut i)));
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        bail!("template: unterminated quoted string")
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Lit(Value::String(s)));
            }
            '`' => {
                i += 1;
                let st = i;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    bail!("template: unterminated raw quoted string");
                }
                out.push(Tok::Lit(Value::String(chars[st..i].iter().collect())));
                i += 1;
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let st = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let t: String = chars[st..i].iter().collect();
                let v = if let Ok(n) = t.parse::<i64>() {
                    Value::from(n)
                } else {
                    Value::from(t.parse::<f64>().map_err(|_| anyhow!("template: bad number {t}"))?)
                };
                out.push(Tok::Lit(v));
            }
            c if is_ident(c) => {
                let st = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let w: String = chars[st..i].iter().collect();
                out.push(match w.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(w),
                });
            }
            c => bail!("template: unexpected {c:?} in action"),
        }
    }
    Ok(out)
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline> {
    let mut toks = toks;
    let mut decl = Vec::new();
    if let Some(p) = toks.iter().position(|t| *t == Tok::Declare) {
        for t in &toks[..p] {
            match t {
                Tok::Var(n, path) if path.is_empty() => decl.push(n.clone()),
                Tok::Comma => {}
                _ => bail!("template: bad variable declaration"),
            }
        }
        toks = &toks[p + 1..];
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    bail!("template: missing command before |");
                }
                cmds.push(std::mem::take(&mut cur));
            }
            Tok::LParen => {
                let mut depth = 1;
                let st = i + 1;
                while depth > 0 {
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::LParen) => depth += 1,
                        Some(Tok::RParen) => depth -= 1,
                        Some(_) => {}
                        None => bail!("template: unclosed left paren"),
                    }
                }
                cur.push(Arg::Sub(parse_pipeline(&toks[st..i])?));
            }
            Tok::RParen => bail!("template: unexpected right paren"),
            Tok::Field(p) => cur.push(Arg::Field(p.clone())),
            Tok::Dot => cur.push(Arg::Field(Vec::new())),
            Tok::Var(n, p) => cur.push(Arg::Var(n.clone(), p.clone())),
            Tok::Lit(v) => cur.push(Arg::Lit(v.clone())),
            Tok::Ident(w) => cur.push(Arg::Ident(w.clone())),
            Tok::Declare | Tok::Comma => bail!("template: unexpected token in command"),
        }
        i += 1;
    }
    if cur.is_empty() {
        bail!("template: missing value for command");
    }
    cmds.push(cur);
    Ok(Pipeline { decl, cmds })
}

enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

fn parse_list(pieces: &[Piece], i: &mut usize) -> Result<(Vec<Node>, Stop)> {
    let mut nodes = Vec::new();
    while *i < pieces.len() {
        let p = &pieces[*i];
        *i += 1;
        match p {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t.clone()));
                }
            }
            Piece::Action(a) => {
                let toks = lex(a)?;
                match toks.first() {
                    None => bail!("template: missing value for command"),
                    Some(Tok::Ident(k)) if k == "end" => return Ok((nodes, Stop::End)),
                    Some(Tok::Ident(k)) if k == "else" => {
                        let rest = &toks[1..];
                        if rest.is_empty() {
                            return Ok((nodes, Stop::Else(None)));
                        }
                        if rest.first() == Some(&Tok::Ident("if".into())) {
                            return Ok((nodes, Stop::Else(Some(parse_pipeline(&rest[1..])?))));
                        }
                        bail!("template: unexpected tokens after else");
                    }
                    Some(Tok::Ident(k)) if k == "if" || k == "range" || k == "with" => {
                        let kind = k.clone();
                        let pipe = parse_pipeline(&toks[1..])?;
                        nodes.push(parse_block(&kind, pipe, pieces, i)?);
                    }
                    Some(_) => nodes.push(Node::Action(parse_pipeline(&toks)?)),
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

fn parse_block(kind: &str, pipe: Pipeline, pieces: &[Piece], i: &mut usize) -> Result<Node> {
    let (body, end) = parse_list(pieces, i)?;
    let els = match end {
        Stop::Eof => bail!("template: unexpected EOF, missing {{{{end}}}}"),
        Stop::End => Vec::new(),
        Stop::Else(None) => {
            let (els, end) = parse_list(pieces, i)?;
            if !matches!(end, Stop::End) {
                bail!("template: missing {{{{end}}}} after {{{{else}}}}");
            }
            els
        }
        Stop::Else(Some(cond)) => vec![parse_block("if", cond, pieces, i)?],
    };
    Ok(match kind {
        "if" => Node::If(pipe, body, els),
        "range" => Node::Range(pipe, body, els),
        _ => Node::With(pipe, body, els),
    })
}

impl Template {
    /// Parse a template.
    pub fn parse(src: &str) -> Result<Template> {
        let pieces = split_pieces(src)?;
        let mut i = 0;
        let (nodes, end) = parse_list(&pieces, &mut i)?;
        match end {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => bail!("template: unexpected {{{{end}}}}"),
            Stop::Else(_) => bail!("template: unexpected {{{{else}}}}"),
        }
    }

    /// The fields the template reads from its data at the top level (outside range/with, where
    /// the dot changes): `.Names` in `{{.Names}}`, `{{if .Status}}` or `{{json .Labels}}`.
    pub(super) fn top_fields(&self) -> Vec<String> {
        fn from_pipe(p: &Pipeline, out: &mut Vec<String>) {
            for a in p.cmds.iter().flatten() {
                match a {
                    Arg::Field(path) if !path.is_empty() => out.push(path[0].clone()),
                    Arg::Sub(inner) => from_pipe(inner, out),
                    _ => {}
                }
            }
        }
        fn walk(nodes: &[Node], out: &mut Vec<String>) {
            for n in nodes {
                match n {
                    Node::Text(_) => {}
                    Node::Action(p) => from_pipe(p, out),
                    Node::If(p, a, b) => {
                        from_pipe(p, out);
                        walk(a, out);
                        walk(b, out);
                    }
                    Node::Range(p, _, _) | Node::With(p, _, _) => from_pipe(p, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, &mut out);
        out
    }

    /// Execute against `data`.
    pub fn execute(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut vars: Vars = vec![(String::new(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}
